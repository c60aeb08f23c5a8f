"""Results that say what they are: encoded with machine-readable AI-generation provenance.

Every stored try-on result carries the IPTC digital source type `trainedAlgorithmicMedia`
twice: in its XMP metadata (PNG iTXt, JPEG APP1, WebP XMP chunk, the model as creator
tool), and in a signed C2PA manifest whose `c2pa.created` action names the model
(shared/c2pa_signing.py).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Final
from xml.sax.saxutils import escape

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from shared.images import encode_png

if TYPE_CHECKING:
    from shared.c2pa_signing import ResultSigner

DIGITAL_SOURCE_TYPE: Final = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
MEDIA_TYPES: Final[dict[str, str]] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
PIL_FORMATS: Final[dict[str, str]] = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


def xmp_packet(model: str) -> bytes:
    """An XMP packet with the IPTC digital source type and the model as CreatorTool."""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
        'xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        f'Iptc4xmpExt:DigitalSourceType="{DIGITAL_SOURCE_TYPE}" xmp:CreatorTool="Proteus ({escape(model)})"/>'
        '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode()


def encode_result(image: Image.Image, image_format: str, *, model: str, smoke: bool, signer: ResultSigner) -> bytes:
    """The image as `image_format` (png | jpeg | webp) with its XMP and its signed C2PA manifest."""
    return signer.sign(encode_xmp(image, image_format, model=model), image_format, model=model, smoke=smoke)


def encode_xmp(image: Image.Image, image_format: str, *, model: str) -> bytes:
    """The image as `image_format` (png | jpeg | webp) with the XMP packet of `xmp_packet`."""
    if image_format not in PIL_FORMATS:
        raise ValueError(f"image_format must be one of {', '.join(PIL_FORMATS)}, got {image_format!r}")
    xmp = xmp_packet(model)
    if image_format == "png":
        info = PngInfo()
        info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8"))
        return encode_png(image, pnginfo=info)
    buffer = io.BytesIO()
    if image_format == "jpeg":
        image.convert("RGB").save(buffer, "JPEG", quality=92, xmp=xmp)
    else:
        image.save(buffer, "WEBP", quality=92, xmp=xmp)
    return buffer.getvalue()


def read_digital_source_type(data: bytes) -> str | None:
    """The IPTC digital source type in an image's XMP, or None."""
    with Image.open(io.BytesIO(data)) as image:
        raw = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")
        if raw is None:
            return None
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    marker = 'DigitalSourceType="'
    start = text.find(marker)
    if start < 0:
        return None
    start += len(marker)
    return text[start : text.index('"', start)]
