"""Image names in exports and imports: the user's own, relative to the folder each image came from.

Annotation tools match annotations to images by name: a CVAT task made from the user's folder, or
a Label Studio project reading a bucket, knows `cams/a/0001.jpg`, not an id we made up. An export
names each image by its path relative to its root (a split folder of the data YAML, an unlabeled
folder); only when two roots hold the same relative path does the later image keep its id as name
in that subfolder (`cams/a/0001-b0283136.jpg`). An import looks each name up under the folders
given, the whole name first and then shorter tails of it (a tool may prefix a bucket folder), and
still maps the id names of earlier exports back to the user's images.

    >>> images, renamed = named_by_roots(annotations.images, [Path("data/cams")])  # "a/0001.jpg", ...
    >>> ImageFinder([Path("data/cams")]).find("cams/a/0001.jpg", Path("x.json"))  # (data/cams/a/0001.jpg, "a/0001.jpg")
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path, PurePosixPath

from yolossl._fs import resolve_inside
from yolossl.data import IMAGE_SUFFIXES, image_id
from yolossl.export.annotations import AnnotatedImage

ID_STEM = re.compile(r".+-[0-9a-f]{8}")  # `image_id`: the stem and 8 hex of the absolute path's sha1


def name_under(path: Path, roots: Sequence[Path]) -> str | None:
    """`path` relative to the deepest of `roots` holding it (as written, else absolute); None if none does."""
    best: tuple[int, str] | None = None
    for root in roots:
        for inner, outer in (
            (os.path.normpath(path), os.path.normpath(root)),
            (os.path.abspath(path), os.path.abspath(root)),
        ):
            if os.path.isabs(inner) != os.path.isabs(outer):
                continue
            relative = os.path.relpath(inner, outer)
            if relative.split(os.sep)[0] in ("..", ".") or os.path.isabs(relative):
                continue
            depth = len(Path(os.path.abspath(root)).parts)
            if best is None or depth > best[0]:
                best = (depth, PurePosixPath(*Path(relative).parts).as_posix())
            break
    return best[1] if best else None


def named_by_roots(images: list[AnnotatedImage], roots: Sequence[Path]) -> tuple[list[AnnotatedImage], list[str]]:
    """The images named by their path under `roots` (their file name when no root holds them).

    Each image's current `name` is its id name (`<stem>-<8 hex><suffix>`); a relative name that an
    earlier image already took becomes that id name in the same subfolder. Returns the images and
    one `'<path> -> <name>'` note per such image.
    """
    used: set[str] = set()
    named, renamed = [], []
    for image in images:
        name = name_under(image.path, roots) or image.path.name
        if name in used:
            folder = PurePosixPath(name).parent
            name = (folder / PurePosixPath(image.name).name).as_posix()
            renamed.append(f"{image.path} -> {name}")
        used.add(name)
        named.append(replace(image, name=name))
    return named, renamed


def tails(name: str) -> list[str]:
    """`a/b/c.jpg`, `b/c.jpg`, `c.jpg`: the name and its shorter tails, longest first."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return ["/".join(parts[k:]) for k in range(len(parts))]


class ImageFinder:
    """Finds the user's image for a name read from an annotation file.

    `roots` are searched in order, each for the whole name and then its tails; an id name of an earlier
    export (`l_00000-b0283136.jpg`) is first looked up among `known()` images (path, name), listed
    only when such a name comes up.
    """

    def __init__(self, roots: Sequence[Path], known: Callable[[], Iterable[tuple[Path, str]]] = tuple) -> None:
        self.roots = tuple(roots)
        self._known = known
        self._by_id: dict[str, tuple[Path, str]] | None = None

    def find(self, name: str, source: Path) -> tuple[Path, str] | None:
        """(the image's path, the name to write it under), or None when no root holds it."""
        stem = PurePosixPath(name).stem
        if ID_STEM.fullmatch(stem) and stem in self._ids():
            return self._ids()[stem]
        for root in self.roots:
            for tail in tails(name):
                path = resolve_inside(root, tail, source=source, entry=f"image {name!r}", what="images folder")
                if path.exists() or path.is_symlink():
                    return path, tail
        return None

    def _ids(self) -> dict[str, tuple[Path, str]]:
        if self._by_id is None:
            self._by_id = {image_id(path): (path, name) for path, name in self._known()}
        return self._by_id


def images_under(roots: Sequence[Path]) -> list[tuple[Path, str]]:
    """Every image under `roots` (recursively) with its name relative to its root."""
    found = []
    for root in roots:
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            for file in sorted(files):
                if Path(file).suffix.lower() in IMAGE_SUFFIXES:
                    path = Path(folder) / file
                    found.append((path, path.relative_to(root).as_posix()))
    return found


def common_folder(images: Sequence[AnnotatedImage]) -> tuple[Path, ...]:
    """The deepest folder holding every image: the root when none is known (a `yolossl label` output)."""
    if not images:
        return ()
    return (Path(os.path.commonpath([os.path.abspath(image.path.parent) for image in images])),)


def names_readme(roots: Sequence[Path], renamed: Sequence[str], images_dir: str | None) -> str:
    """The export README's part on names: what they are relative to, and which images could not keep theirs."""
    lines = [
        "\n## Image names\n",
        "Each image is named by its path relative to the folder it came from, subfolders kept:\n",
        *(f"- `{root}`\n" for root in roots),
        (
            f"\nThe images are linked under `{images_dir}` by those names.\n"
            if images_dir
            else "\nNo image is linked here: these names match your own files, where you keep them.\n"
        ),
    ]
    if renamed:
        lines.append(
            "\nThese images have the same relative name as an earlier one under another folder, so they are "
            "named by their image id (your file does not have this name):\n\n"
        )
        lines += [f"- `{note}`\n" for note in renamed]
    return "".join(lines)
