"""The sections a reviewer looks at rather than reads: full-size photos, gain histogram, training curves.

Pure (no TensorFlow, no files, no clock), like the other sections: photos.py, gain_histogram.py and
curves.py make the images, these functions lay them out. Images are inlined (JPEG photos, PNG
crops, SVG plots). The before/after slider is one `<input type="range">` over two stacked images;
its only script is the inline `oninput` attribute that moves the divider (a CSS variable), so the
page still loads nothing and, with scripts blocked, shows the divider in the middle.
"""
from __future__ import annotations

from phone2dslr.components.run_report.page import (
    PSNR, FullPhoto, GainSummary, Plot, data_img, e, fmt, num, section, table, tag)

SLIDER_SCRIPT = "this.parentNode.style.setProperty('--pos',this.value+'%')"

STYLE = """
.photo{margin:0 0 26px}.views{display:grid;grid-template-columns:repeat(auto-fit,minmax(340px,1fr));gap:10px}
.view{display:flex;flex-direction:column;gap:3px;font-size:.85em}
.compare{position:relative;--pos:50%;line-height:0;user-select:none}
.compare img,.view>img{display:block;width:100%;height:auto;border:1px solid #ccd}
.compare img.after{position:absolute;top:0;left:0;clip-path:inset(0 0 0 var(--pos))}
.compare .bar{position:absolute;top:0;bottom:0;left:var(--pos);width:2px;margin-left:-1px;background:#fff;
box-shadow:0 0 3px #000;pointer-events:none}
.compare input{position:absolute;inset:0;width:100%;height:100%;margin:0;opacity:0;cursor:ew-resize}
.compare .lbl{position:absolute;top:6px;padding:1px 6px;background:rgba(0,0,0,.55);color:#fff;font-size:12px;
line-height:1.5;border-radius:3px;pointer-events:none}.compare .lbl.l{left:6px}.compare .lbl.r{right:6px}
.zoom{display:flex;gap:8px;flex-wrap:wrap;margin-top:8px}.zoom .cell{display:flex;flex-direction:column;font-size:.85em}
.zoom img{image-rendering:pixelated;border:1px solid #ccd}
.plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(440px,1fr));gap:12px}
figure.plot{margin:0}figure.plot img{width:100%;height:auto;border:1px solid #e3e6ea}#gain figure.plot{max-width:760px}
figure.plot figcaption,.photo figcaption{font-size:.85em;color:#556}
"""


def photos(items: list[FullPhoto], note: str) -> str:
    """Each photo: a phone | enhanced slider, the DSLR photo beside it, and centre crops at full resolution."""
    head = tag("p", e(note), "muted") if note else ""
    if not items:
        return section("photos", "Full-size photos", head + tag("p", "no full-size photos to show", "muted"))
    return section("photos", "Full-size photos: phone / enhanced / DSLR", head + "".join(_photo(p) for p in items))


def _photo(p: FullPhoto) -> str:
    h, w = p.display_size
    size = f'width="{w}" height="{h}"'
    slider = ('<div class="compare">'
              + data_img(p.phone_jpeg, "image/jpeg", f"phone photo {p.name}", f'class="before" {size}')
              + data_img(p.enhanced_jpeg, "image/jpeg", f"enhanced photo {p.name}", f'class="after" {size}')
              + '<span class="bar"></span><span class="lbl l">phone</span><span class="lbl r">enhanced</span>'
              + f'<input type="range" min="0" max="100" value="50" aria-label="{e("phone / enhanced divider")}" '
              + f'oninput="{e(SLIDER_SCRIPT)}"></div>')
    views = [tag("div", slider + tag("span", e("phone (left) | enhanced (right): drag across the photo")), "view")]
    if p.dslr_jpeg is not None:
        views.append(tag("div", data_img(p.dslr_jpeg, "image/jpeg", f"DSLR photo {p.name}")
                         + tag("span", e("DSLR (target)" + (f": {p.dslr_note}" if p.dslr_note else ""))), "view"))
    top, left, zh, zw = p.zoom_box
    zoom_size = f'width="{zw * p.zoom_scale}" height="{zh * p.zoom_scale}"'
    crops = [("phone", p.phone_zoom_png), ("enhanced", p.enhanced_zoom_png), ("DSLR", p.dslr_zoom_png)]
    cells = "".join(tag("div", data_img(png, "image/png", f"{label} crop {p.name}", zoom_size) + tag("span", e(label)),
                        "cell") for label, png in crops if png is not None)
    score = ""
    if p.psnr_phone is not None and p.psnr_model is not None:
        score = (f"; whole photo vs DSLR: phone {fmt(PSNR, p.psnr_phone)}, enhanced {fmt(PSNR, p.psnr_model)} "
                 f"({fmt(PSNR, p.psnr_model - p.psnr_phone, signed=True)})")
    caption = (f"{p.name}: {p.size[1]}x{p.size[0]} px enhanced at full resolution in {p.seconds:.1f} s, shown at "
               f"{w}x{h}; crops: {zw}x{zh} px from ({left}, {top}) shown at {p.zoom_scale}x (nearest neighbour)"
               + score)
    return (f'<figure class="photo"><div class="views">{"".join(views)}</div>'
            f'<div class="zoom">{cells}</div>{tag("figcaption", e(caption))}</figure>')


def gain(summary: GainSummary | None, note: str) -> str:
    """How many test patches the model made worse than the phone photo, and by how much."""
    head = tag("p", e(note), "muted") if note else ""
    title = "Per-patch PSNR gain on the test split"
    if summary is None:
        return section("gain", title, head + tag("p", "no gain histogram", "muted"))
    s = summary
    worse_by = ", ".join(f"{n} ({n / s.patches:.1%}) by more than {t} dB" for t, n in s.worse_by.items())
    lines = [f"{s.worse} of {s.patches} patches ({s.worse / s.patches:.1%}) got worse than the phone patch "
             f"({worse_by}); {s.patches - s.worse} got better or stayed equal.",
             f"Gain: mean {fmt(PSNR, s.mean, True)}, median {fmt(PSNR, s.median, True)}, 5th percentile "
             f"{fmt(PSNR, s.p5, True)}, 95th percentile {fmt(PSNR, s.p95, True)}."]
    body = "".join(tag("p", e(line), "bad" if i == 0 and s.worse else "") for i, line in enumerate(lines))
    figure = (f'<figure class="plot">{data_img(s.histogram.svg, "image/svg+xml", s.histogram.title)}'
              f'{tag("figcaption", e("red: bins below 0 dB (worse than the phone patch); dashed: the median"))}'
              "</figure>")
    rows = [[tag("span", e(pos), "num"), e(src), num(PSNR, phone), num(PSNR, g, True)]
            for pos, src, phone, g in s.worst]
    worst = (tag("p", e("The worst patches (position in the split, as in the samples below):"), "muted")
             + table(["Patch", "Source", "Phone PSNR vs DSLR", "Gain"], rows, "worst"))
    return section("gain", title, head + body + figure + worst)


def curves(plots: list[Plot], note: str) -> str:
    """The training curves, one figure per group of logged values."""
    head = tag("p", e(note), "muted") if note else ""
    if not plots:
        return section("curves", "Training curves", head + tag("p", "no training curves to show", "muted"))
    figures = "".join(
        f'<figure class="plot" id="{e(p.anchor)}">{data_img(p.svg, "image/svg+xml", p.title)}'
        + (tag("figcaption", e(p.caption)) if p.caption else "") + "</figure>" for p in plots)
    return section("curves", "Training curves", head + f'<div class="plots">{figures}</div>')
