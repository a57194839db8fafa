"""Hatch metadata hook shared by every snetx distribution (each package links to it).

The version lives in one place, the repository's ``VERSION`` file; sibling pins are
written ``{version}`` in ``[tool.hatch.metadata.hooks.custom]`` and filled in here, so
``snetx-vision 0.2.0`` always requires exactly ``snetx-core==0.2.0``. Building from an
sdist never reaches this hook's ``update``: hatchling reads the dynamic fields back from
the sdist's PKG-INFO.
"""

from pathlib import Path

from hatchling.metadata.plugin.interface import MetadataHookInterface


def _find_version(start: Path) -> str:
    for folder in (start, *start.parents):
        candidate = folder / "VERSION"
        if candidate.is_file():
            return candidate.read_text().strip()
    raise FileNotFoundError(f"no VERSION file above {start}")


class SnetxMetadataHook(MetadataHookInterface):
    def update(self, metadata: dict) -> None:
        version = _find_version(Path(self.root).resolve())

        def fill(reqs):
            return [r.format(version=version) for r in reqs]

        metadata["version"] = version
        if "dependencies" in metadata.get("dynamic", ()) or "dependencies" in self.config:
            metadata["dependencies"] = fill(self.config.get("dependencies", []))
        extras = self.config.get("optional-dependencies")
        if extras is not None:
            metadata["optional-dependencies"] = {k: fill(v) for k, v in extras.items()}
