"""Image reading and writing shared by every paper package.

All images leave this module as NumPy arrays in one of two forms:

* ``uint8 [H, W, 3]`` RGB (what :func:`read_image` and :func:`decode_image` return), or
* ``float32 [H, W, C]`` in ``[0, 1]`` (what networks and metrics use; :func:`to_float32`).

Conversions applied on read, so every caller sees plain RGB:

* EXIF orientation is applied (``PIL.ImageOps.exif_transpose``), so a phone photo stored
  sideways with an orientation tag comes back upright.
* Grayscale (``L``, ``I;16``, ``I``) is replicated to three channels; 16-bit data is scaled
  to 8 bits (``value / 257``, rounded).
* Images with an alpha channel (``RGBA``, ``LA``, palette with transparency) are
  **composited on black**: ``rgb * alpha / 255``.  Fully transparent pixels become black
  whatever RGB values they hold, so hidden garbage under alpha never reaches a network.
* Palette (``P``) images are expanded to RGB.

What this leaves out (the alpha channel, a 16-bit PNG's low bits) :func:`read_extras` returns,
and :func:`write_with_extras` puts back into a result (the `deblur` CLIs).

Only PNG, JPEG and BMP are accepted (:data:`IMAGE_EXTENSIONS`); any other format, a corrupt
or truncated file raises :class:`ImageReadError`, whose message names the file and says what
to do.  Writes are atomic (:func:`atomic_write`, also used for flags.txt, reports and
``.keras`` files): the data goes to a fresh ``O_EXCL`` temporary file in the target folder (never
through a symlink) which gets the umask's mode (``0644`` usually) and is then renamed over the
final name with ``os.replace``.
"""
from __future__ import annotations

import io
import os
import tempfile
from typing import Callable, Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")

# PIL format ids accepted on read (PIL opens multi-picture camera JPEGs through its JPEG plugin).
_READ_FORMATS = ("PNG", "JPEG", "BMP")
_WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP"}


class ImageReadError(ValueError):
    """An image file (or byte string) could not be decoded; the message names it."""


# --------------------------------------------------------------------------- decoding
def _pil_to_rgb(img: Image.Image) -> np.ndarray:
    """Converts a loaded PIL image of any supported mode to uint8 [H, W, 3] RGB."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img).astype(np.float64)
        if mode == "I" and arr.max(initial=0) <= 255:
            arr8 = np.clip(arr, 0, 255).astype(np.uint8)
        else:
            arr8 = np.clip(np.round(arr / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(arr8[..., None], 3, axis=-1)
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("LA", "PA", "La", "RGBa"):
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode == "RGBA":
        arr = np.asarray(img).astype(np.uint16)
        rgb = (arr[..., :3] * arr[..., 3:4] + 127) // 255  # composite on black, rounded
        return rgb.astype(np.uint8)
    if mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8).copy()


def _decode(fp, name: str) -> np.ndarray:
    hint = ("re-export or re-download it, or remove it from the folder "
            "(supported: PNG, JPEG, BMP)")
    fmt = "image"
    try:
        with Image.open(fp, formats=_READ_FORMATS) as img:
            fmt = img.format
            img.load()  # forces the full decode: truncated data raises here
            img = ImageOps.exif_transpose(img)
            arr = _pil_to_rgb(img)
    except Image.UnidentifiedImageError as e:
        raise ImageReadError(
            f"cannot read image {name}: not a PNG/JPEG/BMP file or its header is corrupt "
            f"({e}); {hint}") from e
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as e:
        raise ImageReadError(
            f"cannot read image {name}: the {fmt} data is "
            f"corrupt or truncated ({type(e).__name__}: {e}); {hint}") from e
    if arr.ndim != 3 or arr.shape[-1] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageReadError(f"cannot read image {name}: decoded to unusable shape {arr.shape}; {hint}")
    return arr


def read_image(path) -> np.ndarray:
    """Reads a PNG/JPEG/BMP file as uint8 RGB ``[H, W, 3]`` (EXIF orientation applied).

    Raises:
      FileNotFoundError: ``path`` does not exist.
      ImageReadError: corrupt, truncated or unsupported file (the message names ``path``).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"image file not found: {path}")
    if os.path.isdir(path):
        raise ImageReadError(f"cannot read image {path}: it is a directory, not an image file")
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        raise ImageReadError(f"cannot read image {path}: the file is empty (0 bytes); "
                             "re-export or remove it")
    return _decode(io.BytesIO(data), path)


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decodes PNG/JPEG/BMP bytes to uint8 RGB ``[H, W, 3]``; errors name ``name``."""
    if not data:
        raise ImageReadError(f"cannot decode image {name}: no bytes")
    return _decode(io.BytesIO(bytes(data)), name)


# --------------------------------------------------------------------------- dtype conversion
def to_float32(img) -> np.ndarray:
    """uint8 (or uint16) -> float32 in [0, 1]; a float input is returned as float32 unchanged."""
    arr = np.asarray(img)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / np.float32(255.0)
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / np.float32(65535.0)
    if arr.dtype == np.bool_:
        return arr.astype(np.float32)
    if np.issubdtype(arr.dtype, np.floating):
        return arr.astype(np.float32)
    raise TypeError(f"to_float32: unsupported dtype {arr.dtype} (expected uint8, uint16 or float)")


def to_uint8(img) -> np.ndarray:
    """float in [0, 1] -> uint8 (clip to [0, 1], times 255, round half to even); uint8 unchanged."""
    arr = np.asarray(img)
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        arr = np.nan_to_num(arr.astype(np.float32), nan=0.0)
        return np.round(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    raise TypeError(f"to_uint8: unsupported dtype {arr.dtype} (expected uint8 or float in [0, 1])")


def _to_pil(img) -> Image.Image:
    arr = to_uint8(img)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        return Image.fromarray(arr, mode="L")
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        return Image.fromarray(np.ascontiguousarray(arr), mode="RGB" if arr.shape[-1] == 3 else "RGBA")
    raise ValueError(f"expected an image [H,W], [H,W,1], [H,W,3] or [H,W,4], got shape {arr.shape}")


# --------------------------------------------------------------------------- encoding / writing
def encode_png(img) -> bytes:
    """Encodes uint8 or float [0, 1] ``[H,W]``, ``[H,W,1]`` (grayscale PNG) or ``[H,W,3]`` to PNG bytes."""
    buf = io.BytesIO()
    _to_pil(img).save(buf, format="PNG")
    return buf.getvalue()


def write_image(path, img) -> str:
    """Writes ``img`` (uint8, or float in [0, 1]) to ``path``; format from the extension.

    Creates parent folders. Atomic: writes a temporary file next to ``path`` and renames it,
    so readers never see a half-written image. Returns ``path``.
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in _WRITE_FORMATS:
        raise ValueError(f"cannot write {path}: extension {ext!r} is not one of {IMAGE_EXTENSIONS}")
    pil = _to_pil(img)
    if _WRITE_FORMATS[ext] in ("JPEG", "BMP") and pil.mode == "RGBA":
        pil = pil.convert("RGB")
    kwargs = {"quality": 95} if _WRITE_FORMATS[ext] == "JPEG" else {}
    return atomic_write(path, lambda f: pil.save(f, format=_WRITE_FORMATS[ext], **kwargs))


def read_extras(path) -> dict:
    """What :func:`read_image` leaves out of an image file, for writing a result like it:
    ``{"alpha": uint8 [H,W] or None, "rgb16": uint16 [H,W,3] RGB or None}`` (the alpha channel
    of an RGBA / LA / transparent-palette image; the full 16-bit samples of a 16-bit PNG),
    oriented as :func:`read_image` orients the pixels. Both None for a plain 8-bit RGB file or
    one this cannot read."""
    out = {"alpha": None, "rgb16": None}
    try:
        with Image.open(os.fspath(path), formats=_READ_FORMATS) as img:
            img.load()
            fmt, mode = img.format, img.mode
            oriented = ImageOps.exif_transpose(img)
            if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and
                                                            "transparency" in img.info):
                out["alpha"] = np.asarray(oriented.convert("RGBA"))[..., 3].copy()
            size = oriented.size
    except (OSError, SyntaxError, ValueError, EOFError):
        return out
    if fmt == "PNG":
        import cv2  # pylint: disable=import-outside-toplevel
        raw = cv2.imread(os.fspath(path), cv2.IMREAD_UNCHANGED)
        if raw is not None and raw.dtype == np.uint16 and raw.shape[1::-1] == size:
            rgb = raw if raw.ndim == 2 else raw[..., 2::-1] if raw.shape[-1] >= 3 else raw[..., 0]
            rgb = np.repeat(rgb[..., None], 3, -1) if rgb.ndim == 2 else rgb
            if out["alpha"] is None:  # 16-bit with alpha: written as 8-bit RGBA (alpha kept)
                out["rgb16"] = np.ascontiguousarray(rgb)
    return out


def write_with_extras(path, res, src_rgb, alpha=None, rgb16=None) -> str:
    """Writes the uint8 RGB result ``res`` of the image ``src_rgb`` (:func:`read_image`'s) to the
    PNG ``path`` with :func:`read_extras`'s extras put back: ``alpha`` as is, beside RGB
    un-premultiplied (``res * 255 / alpha``, since :func:`read_image` composited on black);
    ``rgb16``: a 16-bit PNG ``rgb16 + 257 * (res - src_rgb)``, so a pixel the deblurring left
    alone keeps its 16 bits exactly and a changed one moves by the change. Neither: a plain
    :func:`write_image`. Returns ``path``."""
    res = to_uint8(np.asarray(res))
    if alpha is not None and alpha.shape == res.shape[:2]:
        a = alpha.astype(np.float32)[..., None]
        rgb = np.where(a > 0, np.clip(res.astype(np.float32) * 255.0 / np.maximum(a, 1.0), 0,
                                      255), 0)
        return write_image(path, np.concatenate([np.rint(rgb).astype(np.uint8),
                                                 alpha[..., None]], -1))
    if rgb16 is not None and rgb16.shape == res.shape:
        import cv2  # pylint: disable=import-outside-toplevel
        delta = res.astype(np.int32) - to_uint8(np.asarray(src_rgb)).astype(np.int32)
        out = np.clip(rgb16.astype(np.int32) + 257 * delta, 0, 65535).astype(np.uint16)
        ok, buf = cv2.imencode(".png", np.ascontiguousarray(out[..., ::-1]))
        if not ok:
            raise OSError(f"cannot encode the 16-bit PNG {path}")
        return atomic_write(os.fspath(path), buf.tobytes())
    return write_image(path, res)


def umask_mode(mode: int = 0o666) -> int:
    """``mode`` with the process umask applied (``0o644`` under the usual umask 022)."""
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


def atomic_write(path, write: Callable | bytes | str) -> str:
    """Writes a file atomically and safely; returns ``path``.

    ``write`` is bytes, a str (written as UTF-8) or a function given the open binary file. The
    data goes to a fresh temporary file in the target folder, created with ``O_CREAT | O_EXCL``
    (``tempfile.mkstemp``: a random name, never opened through a planted symlink), then gets the
    mode a plain ``open()`` would give (``0o666`` less the umask, instead of mkstemp's ``0o600``)
    and is renamed over ``path`` with ``os.replace`` (which replaces a symlink at ``path`` itself,
    never its target). Parent folders are created. On any error the temporary file is removed.
    """
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=parent, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(write, str):
                f.write(write.encode("utf-8"))
            elif isinstance(write, (bytes, bytearray)):
                f.write(write)
            else:
                write(f)
            os.fchmod(f.fileno(), umask_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


# --------------------------------------------------------------------------- folders
def list_images(folder, recursive: bool = True) -> list[str]:
    """Sorted paths of the PNG/JPEG/BMP files (any case of extension) under ``folder``.

    Hidden files (names starting with ``.``) are skipped.

    Raises:
      FileNotFoundError: ``folder`` does not exist (or is not a folder).
      ValueError: it holds no image file.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"image folder not found (or not a folder): {folder}")
    found = []
    if recursive:
        for root, dirs, files in os.walk(folder, followlinks=True):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            found.extend(os.path.join(root, f) for f in files
                         if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS))
    else:
        found = [os.path.join(folder, f) for f in os.listdir(folder)
                 if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)
                 and os.path.isfile(os.path.join(folder, f))]
    if not found:
        raise ValueError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in folder {folder}"
                         f"{' or its subfolders' if recursive else ''}")
    return sorted(found)


# --------------------------------------------------------------------------- contact sheet
def _as_rgb_uint8(img) -> np.ndarray:
    arr = to_uint8(np.asarray(img))
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise ValueError(f"contact_sheet: expected images [H,W], [H,W,1] or [H,W,3], got {arr.shape}")
    return arr[..., :3]


def _resize_to_height(arr: np.ndarray, height: int) -> np.ndarray:
    h, w = arr.shape[:2]
    if h == height:
        return arr
    new_w = max(1, int(round(w * height / h)))
    return np.asarray(Image.fromarray(arr).resize((new_w, height), Image.BILINEAR))


def contact_sheet(rows: Sequence[Sequence], labels: Iterable[str] | None = None,
                  path=None, pad: int = 2) -> np.ndarray:
    """Tiles rows of images into one labelled uint8 RGB sheet.

    Args:
      rows: list of rows; each row a list of images (uint8 or float [0, 1]; [H,W], [H,W,1] or
        [H,W,3]), e.g. ``[blurred, restored, sharp]``. Within a row every image is resized
        (bilinear, aspect kept) to the row's tallest height. Rows may differ in length.
      labels: optional column titles drawn (PIL default font) above the columns.
      path: when given, the sheet is also written there (atomically).
      pad: pixels of dark grey between cells.

    Returns:
      uint8 ``[H, W, 3]``.
    """
    rows = [[_as_rgb_uint8(im) for im in row] for row in rows]
    rows = [row for row in rows if row]
    if not rows:
        raise ValueError("contact_sheet: no images given")
    rows = [[_resize_to_height(im, max(i.shape[0] for i in row)) for im in row] for row in rows]
    ncols = max(len(row) for row in rows)
    labels = list(labels) if labels is not None else []
    ncols = max(ncols, len(labels))
    col_w = [max((row[c].shape[1] for row in rows if c < len(row)), default=0) for c in range(ncols)]
    font = ImageFont.load_default()
    label_h = 0
    if labels:
        probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        heights = [probe.textbbox((0, 0), str(t), font=font)[3] for t in labels]
        label_h = max(heights + [10]) + 2 * pad
        for c, text in enumerate(labels):  # widen a column whose title is wider than its images
            tw = probe.textlength(str(text), font=font)
            col_w[c] = max(col_w[c], int(np.ceil(tw)) + 2)
    width = sum(col_w) + pad * (ncols + 1)
    height = label_h + sum(row[0].shape[0] for row in rows) + pad * (len(rows) + 1)
    sheet = np.full((height, width, 3), 32, np.uint8)
    y = label_h + pad
    for row in rows:
        x = pad
        for c in range(ncols):
            if c < len(row):
                im = row[c]
                x0 = x + (col_w[c] - im.shape[1]) // 2
                sheet[y:y + im.shape[0], x0:x0 + im.shape[1]] = im
            x += col_w[c] + pad
        y += row[0].shape[0] + pad
    if labels:
        pil = Image.fromarray(sheet)
        draw = ImageDraw.Draw(pil)
        x = pad
        for c in range(ncols):
            if c < len(labels):
                text = str(labels[c])
                tw = draw.textlength(text, font=font)
                draw.text((x + (col_w[c] - tw) / 2, pad), text, fill=(255, 255, 255), font=font)
            x += col_w[c] + pad
        sheet = np.asarray(pil).copy()
    if path is not None:
        write_image(path, sheet)
    return sheet
