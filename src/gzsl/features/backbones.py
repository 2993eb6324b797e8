"""Vision backbones behind one small interface, and the image transform they are fed.

A backbone turns a batch of transformed images ``(N, 3, H, W)`` into one feature vector
per image ``(N, D)``. Providers build backbones from a name: today one provider,
``transformers`` (Hugging Face), which runs on the project's CPU torch and covers ResNet,
ViT, DINOv2, ConvNeXt, CLIP and SigLIP vision encoders. A ``torchvision``, ``timm`` or
``open_clip`` provider is one more class with the same three members (:class:`Backbone`)
and one more entry in :data:`PROVIDERS`.

The transform is ours, not the library's image processor, so that it is the same for
every provider, is recorded exactly (resize, crop, normalisation, interpolation) and is
replayed exactly by ``gzsl predict``. The default, ``imagenet``, is xlsa17's: shorter
side resized to 256, centre crop 224, ImageNet mean and standard deviation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from gzsl.data.errors import GZSLError
from gzsl.data.io import sha256_file

DEFAULT_BACKBONE = "microsoft/resnet-101"
DEFAULT_PROVIDER = "transformers"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
POOLINGS = ("auto", "pooler", "cls", "mean", "image_features")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")

_VISION_HELP = "install the vision extra: pip install 'gzsl[vision]'"


def require(module: str) -> Any:
    """Import an optional vision dependency, or raise one clear line saying how to get it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise GZSLError(f"{module} is not installed, and this command needs it. Fix: "
                        f"{_VISION_HELP}") from error


@dataclass(frozen=True)
class Transform:
    """Resize the shorter side, centre-crop a square, scale to [0, 1], normalise per channel.

    Attributes:
        resize: length of the shorter side after resizing (the longer one keeps the aspect
            ratio, truncated to whole pixels as torchvision's ``Resize`` does).
        crop: side of the centre square cut from the resized image.
        mean, std: per-channel (RGB) normalisation.
        interpolation: ``bilinear`` or ``bicubic`` (PIL's, with antialiasing).
    """

    resize: int = 256
    crop: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if self.crop < 1 or self.resize < self.crop:
            raise GZSLError(f"transform: resize ({self.resize}) must be at least crop "
                            f"({self.crop}), and crop at least 1")
        if self.interpolation not in ("bilinear", "bicubic"):
            raise GZSLError(f"transform: unknown interpolation {self.interpolation!r}; "
                            "choose bilinear or bicubic")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise GZSLError("transform: mean and std need three values each (R, G, B), "
                            "std above 0")

    def __call__(self, image: Any) -> np.ndarray:
        """An RGB PIL image -> ``(3, crop, crop)`` float32 array."""
        from PIL import Image

        method = Image.Resampling.BILINEAR if self.interpolation == "bilinear" \
            else Image.Resampling.BICUBIC
        width, height = image.size
        if width <= height:
            size = (self.resize, max(1, int(self.resize * height / width)))
        else:
            size = (max(1, int(self.resize * width / height)), self.resize)
        if size != image.size:
            image = image.resize(size, method)
        left = int(round((size[0] - self.crop) / 2.0))
        top = int(round((size[1] - self.crop) / 2.0))
        image = image.crop((left, top, left + self.crop, top + self.crop))
        array = np.asarray(image, dtype=np.float32) / 255.0
        array = (array - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(array.transpose(2, 0, 1))

    def describe(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Transform:
        try:
            return cls(int(record["resize"]), int(record["crop"]),
                       tuple(float(v) for v in record["mean"]),  # type: ignore[arg-type]
                       tuple(float(v) for v in record["std"]),  # type: ignore[arg-type]
                       str(record.get("interpolation", "bilinear")))
        except (KeyError, TypeError, ValueError) as error:
            raise GZSLError(f"the recorded transform {record!r} is incomplete ({error}). "
                            "Fix: extract the features again with gzsl features extract") \
                from error


#: Named transforms: ``imagenet`` (xlsa17's ResNet-101 recipe) and ``clip`` (OpenAI CLIP's).
TRANSFORMS = {
    "imagenet": Transform(),
    "clip": Transform(224, 224, CLIP_MEAN, CLIP_STD, "bicubic"),
}


class Backbone(Protocol):
    """What extraction needs from a vision encoder; all a new provider implements.

    Attributes:
        transform: how each image becomes a ``(3, H, W)`` array before :meth:`embed`.
    """

    transform: Transform

    def embed(self, pixels: Any) -> Any:
        """``(N, 3, H, W)`` float32 tensor (on the CPU) -> ``(N, D)`` float32 CPU tensor."""

    def describe(self) -> dict[str, Any]:
        """Provenance: provider, backbone name, weights id, pooling, transform, versions."""


def weights_id(name: str, model: Any = None) -> dict[str, Any]:
    """Which weights these are: a local folder's weight-file checksums, or the hub name
    and (when the library reports it) the hub commit they were downloaded at."""
    folder = Path(name).expanduser()
    if folder.is_dir():
        files = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".pt"))
        return {"local_folder": str(folder.resolve()),
                "sha256": {p.name: sha256_file(p) for p in files}}
    commit = getattr(getattr(model, "config", None), "_commit_hash", None)
    return {"hub": name, "commit": commit}


def library_versions(*modules: str) -> dict[str, str]:
    """Versions of the libraries that shape the features (absent ones are left out)."""
    from importlib import metadata

    out = {}
    for name in ("gzsl", "torch", "numpy", "pillow", *modules):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def resolve_device(device: str) -> Any:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when available) as a torch device."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise GZSLError(f"unknown device {device!r}. Fix: cpu, cuda, cuda:N or auto") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise GZSLError(f"device {device!r} asked for, but CUDA is not available here. Fix: "
                        "--device cpu")
    return resolved


def autocast_dtype(precision: str, device: Any) -> Any:
    """The autocast dtype for ``precision`` on ``device``: mixed precision on GPUs only."""
    import torch

    if precision not in PRECISIONS:
        raise GZSLError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if device.type != "cuda":
        if precision in ("fp16", "bf16"):
            raise GZSLError(f"precision {precision} is for GPUs; on {device.type} features are "
                            "computed in fp32. Fix: --precision fp32 (or auto)")
        return None
    return {"auto": torch.float16, "fp16": torch.float16, "bf16": torch.bfloat16,
            "fp32": None}[precision]


class TransformersBackbone:
    """A Hugging Face ``transformers`` vision encoder, loaded by hub name or local folder.

    The model is built by ``AutoModel.from_pretrained``: pretrained weights and a folder
    written by ``save_pretrained`` take the same path. Pooling (``auto``): a CLIP / SigLIP
    checkpoint gives its projected image embedding (``get_image_features``); ViT, DeiT
    and DINOv2 the class token of the last layer; others (ResNet, ConvNeXt) their pooled
    output, flattened (ResNet-101: 2048-d global average pooling, as in xlsa17).
    """

    provider = "transformers"

    def __init__(self, name: str, *, device: str = "cpu", precision: str = "auto",
                 transform: Transform | None = None, pooling: str = "auto") -> None:
        transformers = require("transformers")
        import torch

        if pooling not in POOLINGS:
            raise GZSLError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
        self.name = name
        self.device = resolve_device(device)
        self.dtype = autocast_dtype(precision, self.device)
        self.precision = "fp32" if self.dtype is None else str(self.dtype).replace("torch.", "")
        transformers.utils.logging.disable_progress_bar()
        try:
            model = transformers.AutoModel.from_pretrained(name)
        except (OSError, ValueError, KeyError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise GZSLError(f"cannot load backbone {name!r} with transformers ({first[:200]}). "
                            "Fix: pass a Hugging Face model name (e.g. microsoft/resnet-101; "
                            "needs the hub, or its cache) or a folder written by "
                            "save_pretrained") from error
        self.model = model.eval().to(self.device)
        self.model_type = str(getattr(model.config, "model_type", "?"))
        self.pooling = self._default_pooling() if pooling == "auto" else pooling
        if self.pooling == "image_features" and not hasattr(model, "get_image_features"):
            raise GZSLError(f"backbone {name!r} ({self.model_type}) has no image features "
                            "(pooling image_features is for CLIP-style models)")
        self.transform = transform or (TRANSFORMS["clip"] if self.model_type in
                                       ("clip", "siglip", "siglip2") else TRANSFORMS["imagenet"])
        self._torch = torch

    def _default_pooling(self) -> str:
        if hasattr(self.model, "get_image_features"):
            return "image_features"
        if self.model_type in ("vit", "deit", "dinov2", "dinov2_with_registers", "beit"):
            return "cls"
        return "pooler"

    def embed(self, pixels: Any) -> Any:
        torch = self._torch
        pixels = pixels.to(self.device)
        with torch.inference_mode(), torch.autocast(
                device_type=self.device.type, dtype=self.dtype or torch.float32,
                enabled=self.dtype is not None):
            if self.pooling == "image_features":
                out = self.model.get_image_features(pixel_values=pixels)
                if not isinstance(out, torch.Tensor):  # a model output object
                    embeds = getattr(out, "image_embeds", None)
                    out = embeds if embeds is not None else out.pooler_output
            else:
                output = self.model(pixel_values=pixels)
                if self.pooling == "pooler":
                    out = getattr(output, "pooler_output", None)
                    if out is None:
                        raise GZSLError(f"backbone {self.name!r} ({self.model_type}) has no "
                                        "pooled output. Fix: --pooling cls or mean")
                elif self.pooling == "cls":
                    out = output.last_hidden_state[:, 0]
                else:
                    hidden = output.last_hidden_state
                    out = hidden.mean(dim=1) if hidden.ndim == 3 else hidden.mean(dim=(2, 3))
        return out.reshape(out.shape[0], -1).float().cpu()

    def describe(self) -> dict[str, Any]:
        return {"provider": self.provider, "backbone": self.name,
                "model_type": self.model_type, "weights": weights_id(self.name, self.model),
                "pooling": self.pooling, "transform": self.transform.describe(),
                "precision": self.precision, "device": str(self.device),
                "versions": library_versions("transformers", "safetensors")}


#: Provider name -> class building a :class:`Backbone` from (name, device, precision,
#: transform, pooling).
PROVIDERS: dict[str, Callable[..., Backbone]] = {"transformers": TransformersBackbone}


def load_backbone(name: str = DEFAULT_BACKBONE, *, provider: str = DEFAULT_PROVIDER,
                  device: str = "cpu", precision: str = "auto",
                  transform: Transform | None = None, pooling: str = "auto") -> Backbone:
    """A backbone by provider and name (hub id or local folder); see :data:`PROVIDERS`."""
    if provider not in PROVIDERS:
        raise GZSLError(f"unknown backbone provider {provider!r}; choose one of "
                        f"{', '.join(PROVIDERS)}")
    return PROVIDERS[provider](name, device=device, precision=precision, transform=transform,
                               pooling=pooling)


def backbone_from_record(record: dict[str, Any], *, device: str = "cpu",
                         precision: str = "auto") -> Backbone:
    """The backbone a features file's provenance describes, with the same transform and
    pooling (so new images are embedded exactly as the training images were)."""
    try:
        provider, name = record["provider"], record["backbone"]
        transform = Transform.from_record(record["transform"])
        pooling = record.get("pooling", "auto")
    except (KeyError, TypeError) as error:
        raise GZSLError(f"the recorded backbone {record!r} lacks {error}. Fix: extract the "
                        "features again with gzsl features extract") from error
    folder = (record.get("weights") or {}).get("local_folder")
    if folder and not Path(name).expanduser().is_dir() and Path(folder).is_dir():
        name = folder  # recorded relative to another working folder
    return load_backbone(name, provider=provider, device=device, precision=precision,
                         transform=transform, pooling=pooling)
