"""index.html beside clusters.json: every cluster's faces as thumbnails, with its id and size.

One static page, no script and nothing fetched: it opens offline, from the folder, in any browser.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

STYLE = """body{font-family:sans-serif;margin:1em;background:#fafafa}
section{margin:0 0 1.5em}h2{font-size:1.05em;margin:.2em 0}
img{width:96px;height:96px;object-fit:cover;margin:1px;border-radius:3px;background:#ddd}
.meta{color:#555;font-weight:normal}"""


def _faces(faces: list[dict]) -> str:
    return "".join(
        f'<img loading="lazy" src="{escape(f["thumbnail"])}" '
        f'title="{escape(f["path"])} x={f["box"][0]} y={f["box"][1]} {f["box"][2]}x{f["box"][3]}" alt="">'
        for f in faces if f.get("thumbnail"))


def write_contact_sheet(path: Path, content: dict) -> None:
    clusters, loose = content["clusters"], content["unclustered"]
    parts = [f"<!doctype html><html><head><meta charset=utf-8><title>Face clusters</title><style>{STYLE}</style>"
             f"</head><body><h1>{len(clusters)} clusters, {len(loose)} faces unclustered</h1>"
             f"<p class=meta>{content['faces']} faces in {content['images']} photos; model "
             f"{escape(content['model_id'])}, max_distance {content['max_distance']}, min_faces "
             f"{content['min_faces']}, attach_distance {content.get('attach_distance', 0)}. "
             "Name clusters in a CSV (cluster_id,identity_id[,display_name]) and run "
             "<code>facesearch-indexer enroll-clusters clusters.json --names names.csv</code>.</p>"]
    for c in clusters:
        guess = ""
        if c.get("nearest_identity"):
            guess = (f", nearest enrolled: {escape(c['nearest_identity'])} at {c['nearest_distance']} "
                     f"({c['nearest_votes']} of {c['nearest_queried']} faces)")
        parts.append(f'<section id="{escape(c["id"])}"><h2>{escape(c["id"])} <span class=meta>{c["size"]} faces'
                     f'{guess}</span></h2>{_faces(c["faces"])}</section>')
    if loose:
        parts.append(f"<section id=unclustered><h2>unclustered <span class=meta>{len(loose)} faces</span></h2>"
                     f"{_faces(loose)}</section>")
    parts.append("</body></html>\n")
    Path(path).write_text("".join(parts))
