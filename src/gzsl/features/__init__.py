"""From images and words to a dataset: image features, class semantics, provenance.

``gzsl.features.backbones`` wraps vision encoders behind one small interface (today
through Hugging Face ``transformers``), ``gzsl.features.extract`` turns a folder of images
into a features file, resumably, and ``gzsl.features.semantics`` turns an attribute table,
class names or descriptions into class semantic vectors. They need the optional
``gzsl[vision]`` dependencies; importing this package alone imports none of them.
"""
