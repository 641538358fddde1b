"""Summarise FASTA files: per-sample sequence statistics, then one merged table.

Run it with `maestro run` from this directory. Every step is a bash script; maestro gives it
its inputs, args and outputs as shell variables and checks them before and after it runs.
`maestro build` checks the scripts with ShellCheck; `maestro run --resume` reruns only what
changed; `maestro status` shows every run.
"""

from __future__ import annotations

from pathlib import Path

import libmaestro as maestro


def sequence_stats(fasta: Path, min_length: str) -> maestro.ProcessOutputs:
    """Count the sequences of one FASTA file and their GC content (awk only, no extra tools)."""
    sample = fasta.name.removesuffix(".fasta")
    return maestro.process(
        name=f"stats_{sample}",
        executor="default",
        inputs={"fasta": fasta},
        args={"sample": sample, "min_length": min_length},
        outputs={"stats": "stats.tsv"},
        script="""
            awk -v sample="$sample" -v min="$min_length" '
                /^>/ { if (seq != "") emit(); seq = ""; next }
                { seq = seq $0 }
                END { if (seq != "") emit(); printf "%s\\t%d\\t%d\\t%.3f\\n", sample, n, bases, (bases ? gc / bases : 0) }
                function emit(   g) {
                    if (length(seq) < min) return
                    n++; bases += length(seq)
                    g = seq; gc += gsub(/[GCgc]/, "", g)
                }
            ' "$fasta" > "$stats"
        """,
    )


def merge(tables: list[Path]) -> maestro.ProcessOutputs:
    """Merge the per-sample tables into one, with a header line."""
    inputs = {f"table_{i}": path for i, path in enumerate(tables)}
    return maestro.process(
        name="merge",
        executor="default",
        inputs=inputs,
        outputs={"summary": "summary.tsv"},
        script="""
            printf 'sample\\tsequences\\tbases\\tgc_fraction\\n' > "$summary"
            for var in $(compgen -v table_ | sort -t_ -k2 -n); do
                cat "${!var}" >> "$summary"
            done
        """,
    )


@maestro.main
def main() -> None:
    min_length = maestro.arg("min_length")
    # One process per sample, all at once (as many as the machine has CPUs); results keep the
    # order of the samples, and a failed sample never stops the others.
    results = maestro.parallelize(
        maestro.inputs("samples"), lambda fasta: sequence_stats(fasta, min_length).stats
    )
    stats = maestro.raise_failures(results)  # one error listing every failed sample
    summary = merge(stats).summary
    print(summary.read_text(), end="")
    print(f"summary written to {summary}")


if __name__ == "__main__":
    main()
