"""Build a text corpus from what is on this machine (Debian docs, licences, Python sources).

Files keep a supported suffix (.md, .html, .txt) so the real loaders run; gzip'd Debian docs are
unpacked; Python sources become .txt. Stops once `megabytes` are collected. Deterministic order.
"""

from __future__ import annotations

import gzip
import os
import shutil
import sys
from pathlib import Path

_SOURCES = ("/usr/share/doc", "/usr/share/common-licenses", f"/usr/lib/python{sys.version_info.major}."
            f"{sys.version_info.minor}", str(Path(os.__file__).parent))
_KEEP = {".md": ".md", ".markdown": ".md", ".html": ".html", ".htm": ".html", ".txt": ".txt", ".rst": ".txt",
         ".py": ".txt", "": ".txt"}
_MAX_FILE = 4_000_000


def build_corpus(target: Path, megabytes: float) -> tuple[int, int]:
    """Fill `target`; returns (files, bytes)."""
    target.mkdir(parents=True, exist_ok=True)
    wanted = int(megabytes * 1_000_000)
    total = files = 0
    seen: set[str] = set()
    for root in _SOURCES:
        if not os.path.isdir(root):
            continue
        for folder, dirs, names in os.walk(root):
            dirs.sort()
            for name in sorted(names):
                if total >= wanted:
                    return files, total
                path = Path(folder) / name
                if path.is_symlink() or not path.is_file():
                    continue
                stem, suffix = (name[:-3], Path(name[:-3]).suffix) if name.endswith(".gz") else (name, path.suffix)
                out_suffix = _KEEP.get(suffix.lower())
                if out_suffix is None:
                    continue
                key = f"{folder}/{stem}"
                if key in seen:
                    continue
                seen.add(key)
                try:
                    data = gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()
                except (OSError, EOFError, gzip.BadGzipFile):
                    continue
                if not data or len(data) > _MAX_FILE or b"\x00" in data[:4096]:
                    continue
                relative = os.path.relpath(folder, "/").replace(os.sep, "__")
                out = target / f"{relative}__{stem}{'' if stem.endswith(out_suffix) else out_suffix}"
                out.write_bytes(data)
                files += 1
                total += len(data)
    return files, total


def fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path
