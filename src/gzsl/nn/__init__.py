"""Building blocks shared by methods: coupling blocks, ActNorm, small networks.

Import from the submodules (``gzsl.nn.coupling``...); this package re-exports nothing so
that adding a block never touches a shared file.
"""
