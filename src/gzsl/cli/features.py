"""``gzsl features extract`` and ``gzsl features classes``: images and words -> arrays.

The vision libraries (transformers, sentence-transformers, pillow) are imported inside the
commands, so the rest of the CLI neither needs nor loads them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from gzsl.data.errors import GZSLError

app = typer.Typer(
    name="features",
    help="Image features from a folder of images, class semantics from attributes or text "
    "(needs gzsl[vision]; docs/bring-your-own-images.md).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

BackboneOption = Annotated[str, typer.Option(
    "--backbone", help="Hugging Face model name (microsoft/resnet-101, "
    "openai/clip-vit-base-patch16, facebook/dinov2-base...) or a local folder written by "
    "save_pretrained.")]
DeviceOption = Annotated[str, typer.Option(
    "--device", help="cpu, cuda, cuda:N or auto (CUDA when available).")]


def _console() -> Console:
    return Console(highlight=False, stderr=False)


def build_transform(preset: str, resize: int | None, crop: int | None):  # noqa: ANN201
    """The transform named ``preset`` (``auto``: chosen by the backbone -> None), with
    ``--resize`` / ``--crop`` overriding its sizes."""
    from dataclasses import replace

    from gzsl.features.backbones import TRANSFORMS

    if preset != "auto" and preset not in TRANSFORMS:
        raise typer.BadParameter(f"choose auto, {', '.join(TRANSFORMS)}",
                                 param_hint="--transform")
    if preset == "auto" and resize is None and crop is None:
        return None
    base = TRANSFORMS["imagenet" if preset == "auto" else preset]
    crop = crop if crop is not None else min(base.crop, resize or base.crop)
    return replace(base, resize=resize if resize is not None else max(base.resize, crop),
                   crop=crop)


@app.command()
def extract(
    source: Annotated[Path, typer.Argument(
        help="A folder with one subfolder per class (images anywhere below it), or a CSV "
        "with columns path,class (paths relative to the CSV).", show_default=False)],
    out: Annotated[Path, typer.Argument(help="The features .npz to write.",
                                        show_default=False)],
    backbone: BackboneOption = "microsoft/resnet-101",
    provider: Annotated[str, typer.Option(
        "--provider", help="Library the backbone comes from (today: transformers).")
    ] = "transformers",
    transform: Annotated[str, typer.Option(
        "--transform", help="auto (by backbone: clip for CLIP / SigLIP, else imagenet), "
        "imagenet (resize 256, crop 224, ImageNet mean/std: xlsa17's) or clip (224, "
        "bicubic, CLIP mean/std).")] = "auto",
    resize: Annotated[int | None, typer.Option(
        "--resize", min=1, help="Shorter side after resizing (overrides the transform's).")
    ] = None,
    crop: Annotated[int | None, typer.Option(
        "--crop", min=1, help="Side of the centre crop (overrides the transform's).")] = None,
    pooling: Annotated[str, typer.Option(
        "--pooling", help="auto, pooler, cls, mean or image_features (CLIP-style).")] = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1,
                                            help="Images per forward pass.")] = 32,
    chunk_size: Annotated[int, typer.Option(
        "--chunk-size", min=1, help="Images per saved chunk: what a killed run loses at "
        "most.")] = 512,
    workers: Annotated[int, typer.Option("--workers", min=1,
                                         help="Threads decoding images.")] = 2,
    device: DeviceOption = "auto",
    precision: Annotated[str, typer.Option(
        "--precision", help="auto (fp16 autocast on a GPU, fp32 on the CPU), fp32, fp16 or "
        "bf16 (GPU only).")] = "auto",
    name: Annotated[str | None, typer.Option(
        "--name", help="Dataset name recorded in the file (default: the folder's name).")
    ] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress",
                                           help="Show a progress bar with rate and ETA.")
    ] = True,
    force: Annotated[bool, typer.Option("--force", help="Replace OUT if it exists.")] = False,
) -> None:
    """Extract one feature vector per image with a pretrained vision backbone.

    Resumable: finished chunks are kept in OUT.parts/, so running the same command again
    after a kill continues where it stopped. Unreadable files (empty, truncated, corrupt,
    not an image) are skipped and listed at the end and in OUT's provenance. Example:
    gzsl features extract ~/pictures feats.npz --backbone microsoft/resnet-101
    """
    from gzsl.features.backbones import load_backbone
    from gzsl.features.extract import extract_features, list_images

    if out.suffix.lower() != ".npz":
        raise GZSLError(f"output {out} must end with .npz")
    if out.exists() and not force:
        raise GZSLError(f"{out} exists; pass --force to replace it")
    images = list_images(source)
    model = load_backbone(backbone, provider=provider, device=device, precision=precision,
                          transform=build_transform(transform, resize, crop), pooling=pooling)
    result = extract_features(images, model, out, batch_size=batch_size,
                              chunk_size=chunk_size, workers=workers, progress=progress,
                              force=force, name=name)
    console = _console()
    if result.resumed_chunks:
        console.print(f"resumed: {result.resumed_chunks} chunk(s) were already done")
    console.print(f"wrote {out}: {result.images} images, {result.feature_dim}-d features "
                  f"({backbone}, {model.describe()['pooling']} pooling)", soft_wrap=True)
    for note in result.notes:
        console.print(f"note: {note}", soft_wrap=True, markup=False)
    if result.skipped:
        console.print(f"[yellow]skipped {len(result.skipped)} file(s)[/] (also recorded in "
                      f"{out}):")
        for item in result.skipped:
            console.print(f"  {item['path']}: {item['reason']}", soft_wrap=True, markup=False)


@app.command()
def classes(
    out: Annotated[Path, typer.Argument(help="The class semantics .npz to write.",
                                        show_default=False)],
    attributes: Annotated[Path | None, typer.Option(
        "--attributes", help="CSV / TSV table: header (class, attribute names...), then one "
        "row per class: its name and one number per attribute.")] = None,
    names: Annotated[bool, typer.Option(
        "--names", help="Embed the class names, put into each --template.")] = False,
    descriptions: Annotated[Path | None, typer.Option(
        "--descriptions", help="CSV with columns class,description: embed one description "
        "per class.")] = None,
    classes_of: Annotated[Path | None, typer.Option(
        "--classes-of", help="Take the classes (and their order) from this features file "
        "(gzsl features extract's output).")] = None,
    class_list: Annotated[Path | None, typer.Option(
        "--classes", help="Take the classes from this text file, one name per line.")] = None,
    encoder: Annotated[str, typer.Option(
        "--encoder", help="Text encoder: sentence-transformers, or clip (a CLIP "
        "checkpoint's text tower).")] = "sentence-transformers",
    text_model: Annotated[str | None, typer.Option(
        "--text-model", help="Model name or local folder (default: "
        "sentence-transformers/all-mpnet-base-v2, or openai/clip-vit-base-patch16 for "
        "--encoder clip).", show_default=False)] = None,
    template: Annotated[list[str] | None, typer.Option(
        "--template", help="Prompt for --names with {} for the class name; repeat to "
        "average several (default: 'a photo of a {}.').", show_default=False)] = None,
    l2: Annotated[bool, typer.Option("--l2/--no-l2", help="L2-normalise attribute rows "
                                     "(text embeddings always are).")] = True,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda or cuda:N.")] = "cpu",
    force: Annotated[bool, typer.Option("--force", help="Replace OUT if it exists.")] = False,
) -> None:
    """Make one semantic vector per class from attributes, class names or descriptions.

    Give exactly one of --attributes, --names, --descriptions. Classes come from
    --classes-of (a features file) or --classes (a list); with --attributes alone, from the
    table. Example: gzsl features classes sem.npz --attributes attributes.csv --classes-of
    feats.npz
    """
    from gzsl.data.make import read_names as read_class_list
    from gzsl.features.extract import read_features_file
    from gzsl.features.semantics import (
        DEFAULT_TEMPLATES,
        DEFAULT_TEXT_MODEL,
        from_attribute_table,
        from_texts,
        load_text_encoder,
        prompts,
        read_descriptions,
    )

    if sum([attributes is not None, names, descriptions is not None]) != 1:
        raise GZSLError("give exactly one of --attributes TABLE, --names, --descriptions CSV")
    if classes_of is not None and class_list is not None:
        raise GZSLError("give at most one of --classes-of and --classes")
    if out.suffix.lower() != ".npz":
        raise GZSLError(f"output {out} must end with .npz")
    if out.exists() and not force:
        raise GZSLError(f"{out} exists; pass --force to replace it")
    wanted = (list(read_features_file(classes_of).class_names) if classes_of is not None
              else read_class_list(class_list) if class_list is not None else None)
    if attributes is not None:
        result = from_attribute_table(attributes, wanted, l2=l2)
    else:
        if names and wanted is None:
            raise GZSLError("--names needs the classes: --classes-of FEATURES.npz or "
                            "--classes LIST.txt")
        default = "openai/clip-vit-base-patch16" if encoder == "clip" else DEFAULT_TEXT_MODEL
        model = load_text_encoder(encoder, text_model or default, device)
        if names:
            templates = list(template or DEFAULT_TEMPLATES)
            texts = prompts(wanted, templates)
            result = from_texts(texts, model, method="names", extra={"templates": templates})
        else:
            from gzsl.data.io import file_record

            described = read_descriptions(descriptions)
            order = wanted if wanted is not None else list(described)
            missing = [c for c in order if c not in described]
            if missing:
                raise GZSLError(f"{descriptions} describes no {', '.join(missing[:10])}. Fix: "
                                "one row class,description per class")
            result = from_texts({c: [described[c]] for c in order}, model,
                                method="descriptions",
                                extra={"file": file_record(descriptions, "descriptions")})
    result.save(out)
    kind = result.provenance["method"]
    _console().print(f"wrote {out}: {len(result.class_names)} classes x "
                     f"{result.semantics.shape[1]} ({kind}, L2-normalised: "
                     f"{'yes' if result.provenance['l2'] else 'no'})", soft_wrap=True)
