"""Benchmark: `maestro build` on a generated project with many process sites.

Generates a project of --sites process sites spread over --modules modules (each script a
realistic, distinct pipeline), then times, in the same run:

  floor      ShellCheck alone, one invocation over the same scripts written as files
  cold       `maestro build` with no cache (ShellCheck, bashlex, procinfo.toml, manifest)
  no-change  `maestro build` again with nothing changed
  one-edit   `maestro build` after editing one script

Each is the whole command as a user runs it, interpreter start-up included.

    .venv/bin/python scripts/bench/build.py                 # 1,000 sites
    .venv/bin/python scripts/bench/build.py --sites 200 --markdown
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOOLS = ["bwa mem -t 2", "minimap2 -ax sr", "bowtie2 -x"]

SITE = '''

def step_{m}_{i}(sample):
    """Align and summarise sample reads ({m}.{i})."""
    return maestro.process(
        name=f"step_{m}_{i}_{{sample}}",
        executor="default",
        inputs={{"reads": "reads_{i}.fq", "ref": "ref.fa"}},
        args={{"threads": "{threads}"}},
        outputs={{"bam": "out_{i}.bam", "stats": "stats_{i}.txt"}},
        script="""
            set -euo pipefail
            {tool} "$ref" "$reads" | samtools sort -@ "$threads" -o "$bam" -
            samtools index "$bam"
            samtools flagstat "$bam" > "$stats"
            if [ "$(wc -l < "$stats")" -lt {i} ]; then
                echo "short stats for step {m}.{i}" >&2
            fi
        """,
    )
'''


def generate(root: Path, sites: int, modules: int) -> list[str]:
    (root / "steps").mkdir(parents=True)
    (root / "steps" / "__init__.py").write_text("")
    per_module = -(-sites // modules)
    names = []
    count = 0
    for m in range(modules):
        body = ["import libmaestro as maestro\n"]
        for i in range(per_module):
            if count == sites:
                break
            body.append(SITE.format(m=m, i=i, threads=1 + i % 8, tool=TOOLS[i % len(TOOLS)]))
            count += 1
        (root / "steps" / f"mod_{m}.py").write_text("".join(body))
        names.append(f"mod_{m}")
    imports = "".join(f"import steps.{name}\n" for name in names)
    (root / "workflow.py").write_text(
        f"import libmaestro as maestro\n{imports}\n\n@maestro.main\ndef main():\n    pass\n"
    )
    (root / "Maestro.toml").write_text('[executor.default]\ntype = "Local"\n')
    (root / "pyproject.toml").write_text(
        '[project]\nname = "bench"\nversion = "0"\n\n[tool.maestro]\nentry = "workflow.py"\n'
    )
    return names


def prepared_scripts(root: Path, sites: int) -> Path:
    """The scripts as maestro prepares them, as files: the floor's input."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from libmaestro.analysis import project_modules
    from libmaestro.analysis.sites import find_sites
    from libmaestro.process import prepare_script

    found = find_sites(project_modules(root / "workflow.py", root=root).modules)
    assert len(found) == sites, len(found)
    out = root.parent / "floor-scripts"
    out.mkdir()
    for n, site in enumerate(found):
        (out / f"s{n}.sh").write_text(prepare_script(site.script or "").text)
    return out


def timed(argv: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode not in (0, 1):
        sys.exit(f"{argv} failed: {result.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--modules", type=int, default=20)
    parser.add_argument("--markdown", action="store_true")
    options = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    maestro = [str(bin_dir / "maestro"), "build"]
    shellcheck = str(bin_dir / "shellcheck") if (bin_dir / "shellcheck").exists() else "shellcheck"
    with tempfile.TemporaryDirectory(prefix="maestro-bench-build-") as tmp:
        root = Path(tmp) / "project"
        generate(root, options.sites, options.modules)
        scripts = prepared_scripts(root, options.sites)
        files = sorted(str(p) for p in scripts.iterdir())
        floor = timed([shellcheck, "-f", "json1", "-s", "bash", *files], scripts)
        shutil.rmtree(root / ".maestro", ignore_errors=True)
        cold = timed(maestro, root)
        unchanged = timed(maestro, root)
        module = root / "steps" / "mod_0.py"
        module.write_text(module.read_text().replace("samtools index", "samtools  index", 1))
        edited = timed(maestro, root)
    figures = {"floor": floor, "cold": cold, "no-change": unchanged, "one-edit": edited}
    for name, value in figures.items():
        print(f"{name:10s} {value:6.2f} s", file=sys.stderr)
    if options.markdown:
        print(
            f"Machine: {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        )
        print()
        print(
            "| sites | ShellCheck alone (floor) | maestro build, cold | ÷ floor | no change | one script edited |"
        )
        print("|---:|---:|---:|---:|---:|---:|")
        print(
            f"| {options.sites} | {floor:.2f} s | {cold:.2f} s | {cold / floor:.2f}× | "
            f"{unchanged:.2f} s | {edited:.2f} s |"
        )


if __name__ == "__main__":
    main()
