"""Maps the five source folders onto the ``evalkit`` namespace.

``datasets``, ``metrics`` and ``reports`` are top-level names of other libraries (Hugging Face
``datasets`` above all), so the folders install as ``evalkit.datasets`` and so on; nothing installs a
top-level ``datasets``. Sub-packages are found by walking each folder, so a new sub-folder with an
``__init__.py`` needs no edit here. ``configs/`` installs as ``evalkit.configs`` (YAML data only).
"""

from pathlib import Path

from setuptools import find_packages, setup

FOLDERS = {
    "evalkit": "evalkit",
    "evalkit.generators": "generators",
    "evalkit.metrics": "metrics",
    "evalkit.datasets": "datasets",
    "evalkit.reports": "reports",
}
DATA_GLOBS = ["*.yaml", "*.tsv", "*.json", "*.safetensors", "*.txt", "*.md"]

packages: list[str] = []
package_dir: dict[str, str] = {}
for name, folder in FOLDERS.items():
    packages.append(name)
    package_dir[name] = folder
    for sub in find_packages(folder):
        packages.append(f"{name}.{sub}")
        package_dir[f"{name}.{sub}"] = str(Path(folder, *sub.split(".")))

# configs/ holds YAML in nested folders (protocols/ucf101-zeroshot/...); ship it as data.
packages.append("evalkit.configs")
package_dir["evalkit.configs"] = "configs"

setup(
    packages=packages,
    package_dir=package_dir,
    package_data={pkg: DATA_GLOBS + ["**/*.yaml", "**/*.safetensors", "**/*.tsv"] for pkg in packages},
    include_package_data=True,
)
