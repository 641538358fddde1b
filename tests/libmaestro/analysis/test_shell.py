"""Tests for `libmaestro.analysis.shell`: external commands of bash process scripts."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import pytest

from libmaestro.analysis import shell
from libmaestro.analysis.shell import ScriptDependencies, apply_declared, script_dependencies


@dataclass(frozen=True)
class Case:
    name: str
    script: str
    commands: frozenset[str]
    dynamic: frozenset[str] = frozenset()
    local_scripts: frozenset[str] = frozenset()
    functions: frozenset[str] = frozenset()


def case(
    name: str,
    script: str,
    commands: str,
    *,
    dynamic: tuple[str, ...] = (),
    local_scripts: tuple[str, ...] = (),
    functions: tuple[str, ...] = (),
) -> Case:
    """A corpus entry; `commands` is space-separated."""
    return Case(
        name,
        script,
        frozenset(commands.split()),
        frozenset(dynamic),
        frozenset(local_scripts),
        frozenset(functions),
    )


CORPUS = [
    case(
        "bwa-samtools-sort-index",
        """\
#!/usr/bin/env bash
set -euo pipefail
bwa mem -t "$threads" -R "@RG\\tID:${sample}\\tSM:${sample}" "$ref" "$r1" "$r2" \\
    | samtools sort -@ 4 -o "$output_path" -
samtools index "$output_path"
""",
        "bwa samtools",
    ),
    case(
        "samtools-view-flagstat",
        'samtools view -b -q 30 "$bam" chr1 | samtools flagstat - > "$output_path"\n',
        "samtools",
    ),
    case(
        "bcftools-mpileup-call",
        """\
bcftools mpileup -Ou -f "$ref" "$bam" \\
  | bcftools call -mv -Oz -o "$out_vcf"
bcftools index -t "$out_vcf"
""",
        "bcftools",
    ),
    case(
        "seqkit-stats-grep",
        """\
seqkit stats -T "$fasta" > stats.tsv
seqkit grep -r -p '^chr[0-9]+$' "$fasta" | seqkit seq -m 1000 > "$output_path"
""",
        "seqkit",
    ),
    case(
        "fastp-paired",
        """\
fastp -i "$r1" -I "$r2" -o trimmed_1.fq.gz -O trimmed_2.fq.gz \\
      --detect_adapter_for_pe --thread 8 --json fastp.json --html fastp.html
""",
        "fastp",
    ),
    case(
        "minimap2-to-bam",
        'minimap2 -ax map-ont -t 16 "$ref" "$reads" | samtools sort -o aln.bam\n',
        "minimap2 samtools",
    ),
    case(
        "gatk-java-options",
        """\
gatk --java-options "-Xmx8g -XX:ParallelGCThreads=2" HaplotypeCaller \\
    -R "$ref" -I "$bam" -O "$output_path" -ERC GVCF
""",
        "gatk",
    ),
    case(
        "for-loop-zcat-awk",
        """\
for f in *.fq.gz; do
    zcat "$f" | awk 'NR % 4 == 2 { bases += length($0) } END { print bases }' > "${f%.fq.gz}.len"
done
""",
        "zcat awk",
    ),
    case(
        "while-read-samples",
        """\
while read -r s; do
    fastqc -o qc/ "${s}_R1.fastq.gz" "${s}_R2.fastq.gz"
done < samples.txt
""",
        "fastqc",
    ),
    case(
        "heredoc-unquoted-substitution",
        """\
cat <<EOF > "$output_path"
run: $(date +%F) on `hostname`
reads: ${n}
EOF
""",
        "cat date hostname",
    ),
    case(
        "heredoc-quoted-is-data",
        """\
cat <<'EOF' > report.md
samtools $(bwa) `gzip`
EOF
wc -l report.md
""",
        "cat wc",
    ),
    case(
        "functions-excluded",
        """\
log() { echo "[$(date +%T)] $*" >&2; }
trim() {
    cutadapt -q 20 -o "$2" "$1"
}
log hi
trim in.fq out.fq
""",
        "date cutadapt",
        functions=("log", "trim"),
    ),
    case(
        "function-keyword-used-before-definition",
        """\
align "$r1"
function align {
    bowtie2 -x idx -U "$1" -S out.sam
}
""",
        "bowtie2",
        functions=("align",),
    ),
    case(
        "case-mode",
        """\
case "$mode" in
    fast) bowtie2 -p 8 -x idx -U r.fq > out.sam ;;
    sensitive|very-sensitive)
        bowtie2 --very-sensitive -x idx -U r.fq > out.sam
        ;;
    *) bwa mem idx r.fq > out.sam ;;
esac
""",
        "bowtie2 bwa",
    ),
    case("arithmetic-command", "(( n > 3 )) && gzip x\n", "gzip"),
    case(
        "arithmetic-expansion",
        'n=$(( $(wc -l < "$fq") / 4 ))\necho "$n reads"\n',
        "wc",
    ),
    case("set-pipefail-only-builtins", 'set -euo pipefail\ncd "$dir"\nexport LC_ALL=C\n', ""),
    case("xargs-options-with-values", "ls *.txt | xargs -P 4 -I {} gzip {}\n", "ls xargs gzip"),
    case(
        "xargs-attached-values",
        "find . -name '*.sam' -print0 | xargs -0 -n1 -P8 rm -f\n",
        "find xargs rm",
    ),
    case("env-wrapper", "env LC_ALL=C sort -k1,1 in.bed > out.bed\n", "env sort"),
    case(
        "leading-assignment",
        "LC_ALL=C sort -k1,1 -k2,2n in.bed | bgzip > out.bed.gz\n",
        "sort bgzip",
    ),
    case("time-keyword", "time samtools index x.bam\n", "samtools"),
    case(
        "usr-bin-time",
        "/usr/bin/time -f '%M KB' -o mem.txt samtools sort x.bam\n",
        "samtools",
        local_scripts=("/usr/bin/time",),
    ),
    case("nice-pigz", "nice -n 10 pigz -p 4 big.fastq\n", "nice pigz"),
    case("timeout-curl", 'timeout 60 curl -fsSL -o ref.fa.gz "$url"\n', "timeout curl"),
    case(
        "nohup-stdbuf",
        "nohup stdbuf -oL python3 train.py > log.txt 2>&1 &\n",
        "nohup stdbuf python3",
    ),
    case("sudo-user", "sudo -u bio -E apt-get install -y samtools\n", "sudo apt-get"),
    case("exec-command-builtins", "exec samtools view x.bam\ncommand gzip -9 x\n", "samtools gzip"),
    case(
        "which-python-dynamic",
        "$(which python) script.py --in x\n",
        "which",
        dynamic=("$(which python)",),
    ),
    case(
        "variable-as-command",
        '"$SAMTOOLS" view -c x.bam\n${aligner} -t 4 ref.fa r.fq\n',
        "",
        dynamic=("$SAMTOOLS", "${aligner}"),
    ),
    case(
        "local-scripts",
        "./scripts/filter.py x.vcf > y.vcf\nbin/merge a b\n/opt/tool/bin/run --fast\n",
        "",
        local_scripts=("./scripts/filter.py", "bin/merge", "/opt/tool/bin/run"),
    ),
    case(
        "dirname-script-path",
        '"$(dirname "$0")"/helper.sh "$x"\n',
        "dirname",
        dynamic=('"$(dirname "$0")"/helper.sh',),
    ),
    case("find-exec", "find . -name '*.bam' -exec samtools index {} \\;\n", "find samtools"),
    case(
        "find-execdir-plus", "find out -type f -name '*.vcf' -execdir bgzip -f {} +\n", "find bgzip"
    ),
    case("parallel-simple", "parallel -j 4 gzip ::: *.txt\n", "parallel gzip"),
    case(
        "parallel-quoted-template",
        "parallel --jobs 8 'bwa mem ref.fa {} | samtools sort -o {.}.bam' ::: *.fq\n",
        "parallel bwa samtools",
    ),
    case("bash-c", "bash -c 'sort x | uniq -c'\n", "bash sort uniq"),
    case("sh-ec-double-quoted", 'sh -ec "zcat $f | head -n 4"\n', "sh zcat head"),
    case(
        "process-substitution",
        "cat x.fa | tee >(md5sum > x.md5) | gzip > x.fa.gz\n",
        "cat tee md5sum gzip",
    ),
    case(
        "process-substitution-input",
        "paste <(cut -f1 a.tsv) <(cut -f2 b.tsv) > ab.tsv\ndiff <(sort a) <(sort b)\n",
        "paste cut diff sort",
    ),
    case("double-bracket-test", '[[ -s "$output_path" ]] || exit 1\n', ""),
    case(
        "command-v-check",
        """\
if ! command -v samtools >/dev/null 2>&1; then
    echo "samtools missing" >&2
    exit 1
fi
""",
        "",
    ),
    case(
        "awk-sort-uniq-head",
        "awk -F'\\t' '{print $3}' genes.gtf | sort | uniq -c | sort -nr | head\n",
        "awk sort uniq head",
    ),
    case(
        "python-heredoc",
        """\
python3 - "$input" <<'PY'
import sys
print(open(sys.argv[1]).read().count(">"))
PY
""",
        "python3",
    ),
    case(
        "rscript-e",
        "Rscript -e 'library(DESeq2); dds <- DESeqDataSetFromMatrix(counts)'\n",
        "Rscript",
    ),
    case("mkdir-cp", "mkdir -p out && cp x.bam out/\n", "mkdir cp"),
    case(
        "gzip-paste-fastq",
        "gzip -dc r.fq.gz | paste - - - - | cut -f 2 | awk '{print length}' | sort -n | uniq -c\n",
        "gzip paste cut awk sort uniq",
    ),
    case(
        "assignment-substitution",
        "n=$(samtools view -c \"$bam\")\nmean=$(awk '{s+=$1} END {print s/NR}' depth.txt)\n",
        "samtools awk",
    ),
    case(
        "substitution-in-double-quotes",
        'echo "sample $(basename "$bam" .bam) has $(samtools view -c "$bam") reads"\n',
        "basename samtools",
    ),
    case("backticks", "ver=`samtools --version | head -n1`\n", "samtools head"),
    case(
        "subshell-and-group",
        "(cd work && make -j4)\n{ date; uname -a; } > env.txt\n",
        "make date uname",
    ),
    case(
        "if-elif-else",
        """\
if [ -f "$bam.bai" ]; then
    :
elif samtools quickcheck "$bam"; then
    samtools index "$bam"
else
    picard ValidateSamFile I="$bam"
fi
""",
        "samtools picard",
    ),
    case(
        "until-loop",
        'until curl -sf "$url" -o ref.fa; do sleep 5; done\n',
        "curl sleep",
    ),
    case(
        "comments-and-continuations",
        """\
# samtools is mentioned in a comment only
bedtools intersect \\
    -a a.bed \\
    -b b.bed \\
    -wa -u > hits.bed  # | sort
""",
        "bedtools",
    ),
    case("arguments-are-not-commands", "echo gzip samtools\nprintf '%s\\n' bwa\n", ""),
    case(
        "escaped-command-name",
        "\\rm -f tmp.bam\n'samtools' index x.bam\n",
        "rm samtools",
    ),
    case(
        "cat-fasta-process",
        'cat "$test_fasta" > "$output_path"\n',
        "cat",
    ),
    case(
        "redirect-before-command",
        "2>/dev/null grep -c '>' ref.fa\n> empty.txt\n",
        "grep",
    ),
    case(
        "array-and-for-arith",
        """\
files=(a.bam b.bam)
for ((i = 0; i < ${#files[@]}; i++)); do
    samtools index "${files[i]}"
done
""",
        "samtools",
    ),
    case(
        "nested-substitution-in-parameter-default",
        'out=${OUT:-$(mktemp -d)}\nrmdir "$out"\n',
        "mktemp rmdir",
    ),
    case(
        "pipe-stderr-and-background",
        "samtools sort x.bam |& tee sort.log\nsleep 1 &\nwait\n",
        "samtools tee sleep",
    ),
]


def _check(result: ScriptDependencies, expected: Case) -> None:
    assert set(result.commands) == expected.commands
    assert set(result.dynamic) == expected.dynamic
    assert set(result.local_scripts) == expected.local_scripts
    assert set(result.functions) == expected.functions


@pytest.mark.parametrize("entry", CORPUS, ids=[c.name for c in CORPUS])
def test_script_dependencies_corpus(entry: Case) -> None:
    """script_dependencies should find exactly the corpus entry's commands."""
    _check(script_dependencies(entry.script), entry)


@pytest.mark.parametrize("entry", CORPUS, ids=[c.name for c in CORPUS])
def test_script_dependencies_fallback_agrees_on_corpus(entry: Case) -> None:
    """The fallback tokenizer alone should give the same answer as bashlex plus fallback."""
    found = shell._Found()
    found.fallback(entry.script, depth=0)
    assert found.commands - found.functions == entry.commands
    assert found.dynamic == entry.dynamic
    assert found.local_scripts == entry.local_scripts
    assert found.functions == entry.functions


def test_script_dependencies_corpus_is_large_with_unique_ids() -> None:
    assert len(CORPUS) >= 40
    assert len({c.name for c in CORPUS}) == len(CORPUS)


def test_script_dependencies_results_are_sorted_and_unique() -> None:
    result = script_dependencies(
        "zcat a | sort | uniq\nsort b\n$b x\n$a y\n./z\n./y\ng() { :; }\nf() { :; }"
    )
    assert result.commands == ("sort", "uniq", "zcat")
    assert result.dynamic == ("$a", "$b")
    assert result.local_scripts == ("./y", "./z")
    assert result.functions == ("f", "g")


def test_script_dependencies_parsed_script_is_analyzed() -> None:
    result = script_dependencies("bwa mem ref r.fq | samtools sort -o x.bam\n")
    assert result.analyzed
    assert result.note == ""


@pytest.mark.parametrize(
    ("script", "commands", "note"),
    [
        (
            'case "$m" in a) gzip x ;; *) bzip2 x ;; esac',
            ("bzip2", "gzip"),
            "'case' (idank/bashlex#91)",
        ),
        ("x=$((n + 1))\nseq 1 $x", ("seq",), "arithmetic"),
        ("(( n > 3 )) && gzip x", ("gzip",), "'(( ))' (idank/bashlex#68)"),
        ("[[ -s x.bam ]] && samtools index x.bam", ("samtools",), "'[[ ]]' (line 1)"),
        ("time bwa index ref.fa", ("bwa",), "'time'"),
        ('a=(x y)\nls "${a[@]}"', ("ls",), "unexpected token"),
        ('select x in a b; do gzip "$x"; done', ("gzip",), "'select'"),
    ],
    ids=[
        "case",
        "arithmetic-expansion",
        "arithmetic-command",
        "double-bracket",
        "time",
        "array",
        "select",
    ],
)
def test_script_dependencies_unparsable_uses_fallback(
    script: str, commands: tuple[str, ...], note: str
) -> None:
    """Scripts bashlex rejects should be analysed by the tokenizer, flagged, with the reason."""
    result = script_dependencies(script)
    assert not result.analyzed
    assert note in result.note
    assert result.note.startswith("bashlex")
    assert result.commands == commands


@pytest.mark.parametrize(
    ("script", "commands", "note"),
    [
        (
            'if [ -n "$x" ]; then\n  python3 - <<PY\nimport sys\nPY\nfi\n',
            ("python3",),
            "here-document inside a compound command",
        ),
        ("sed -e's/$(date)/x/' in.txt\n", ("sed",), "'$' inside a quoted part of a word"),
        (
            "kallisto quant -i idx --single -l 200 -s 20 --reads=<(zcat r.fq.gz)\n",
            ("kallisto", "zcat"),
            "inside a word",
        ),
        # bashlex would loop forever, eating memory, on this one.
        ("paste <(cat <<'EOF'\n${\nEOF\n) x\n", ("cat", "paste"), "'${' without '}'"),
    ],
    ids=["heredoc-in-if", "quoted-dollar", "procsub-in-word", "unclosed-brace"],
)
def test_script_dependencies_bashlex_misreadings_use_fallback(
    script: str, commands: tuple[str, ...], note: str
) -> None:
    """Scripts bashlex parses wrongly (or never finishes) should go to the tokenizer."""
    result = script_dependencies(script)
    assert not result.analyzed
    assert note in result.note
    assert result.commands == commands


def test_script_dependencies_multiline_substitution_is_read_whole() -> None:
    """bashlex keeps only the first line of a `$( )`; every line should count."""
    script = """\
total=$(
    samtools idxstats "$bam" |
        awk '{ s += $3 } END { print s }'
)
mkdir -p "$(
    dirname "$out"
)"
x=`hostname
uname -r`
"""
    result = script_dependencies(script)
    assert result.commands == ("awk", "dirname", "hostname", "mkdir", "samtools", "uname")
    assert result.analyzed


def test_script_dependencies_dollar_dollar_is_the_pid() -> None:
    assert script_dependencies('tmp="/tmp/x.$$(y)"; sort -T "$tmp" a').commands == ("sort",)


def test_script_dependencies_case_patterns_are_not_commands() -> None:
    script = """\
case "$x" in
    (*.bam) samtools view -h "$x" ;;
    *.cram|*.CRAM)
        samtools view -T ref.fa "$x"
        ;;
    fastq) seqtk seq -A "$x" ;;&
    *) zcat -f "$x" ;;
esac
"""
    assert script_dependencies(script).commands == ("samtools", "seqtk", "zcat")


def test_script_dependencies_case_inside_substitution() -> None:
    script = 'ext=$(case "$f" in *.gz) gzip -l "$f" ;; *) wc -c < "$f" ;; esac)\nsort x'
    assert script_dependencies(script).commands == ("gzip", "sort", "wc")


def test_script_dependencies_heredoc_indented_and_inside_substitution() -> None:
    script = """\
if true; then
\tcat <<-EOF > cfg.txt
\tdate: $(date)
\tgzip
\tEOF
fi
body=$(cat <<'X'
bwa mem
X
)
sort x
"""
    assert script_dependencies(script).commands == ("cat", "date", "sort")


def test_script_dependencies_heredoc_quoted_and_unquoted_same_delimiter() -> None:
    script = "cat <<'EOF'\n$(bwa)\nEOF\ncat <<EOF\n$(uname)\nEOF\n"
    result = script_dependencies(script)
    assert result.commands == ("cat", "uname")
    assert result.analyzed


def test_script_dependencies_here_string_substitution() -> None:
    assert script_dependencies(
        'read -r a b <<< "$(samtools idxstats x.bam | head -1)"'
    ).commands == (
        "head",
        "samtools",
    )


def test_script_dependencies_wrappers_chain() -> None:
    script = "nohup nice -10 timeout -k 5 2h env -u TMP A=1 xargs -r -L 1 bgzip -@ 2\n"
    assert script_dependencies(script).commands == (
        "bgzip",
        "env",
        "nice",
        "nohup",
        "timeout",
        "xargs",
    )


def test_script_dependencies_wrapper_without_command() -> None:
    """`exec > log`, `command -v x` and `xargs` with nothing after run no named command."""
    script = "exec > log 2>&1\ncommand -V bwa\ncat list | xargs -0\nenv\n"
    assert script_dependencies(script).commands == ("cat", "env", "xargs")


def test_script_dependencies_usr_bin_env_shebang_style() -> None:
    result = script_dependencies("/usr/bin/env python3 run.py\n")
    assert result.commands == ("python3",)
    assert result.local_scripts == ("/usr/bin/env",)


def test_script_dependencies_shell_with_options_before_c() -> None:
    script = "bash -o pipefail -c 'samtools view x | wc -l'\nbash run.sh\n"
    assert script_dependencies(script).commands == ("bash", "samtools", "wc")


def test_script_dependencies_find_with_sh_c() -> None:
    script = "find . -name '*.fq' -exec sh -c 'gzip \"$1\"' _ {} \\; -exec touch {}.done \\;"
    assert script_dependencies(script).commands == ("find", "gzip", "sh", "touch")


def test_script_dependencies_keywords_and_builtins_excluded() -> None:
    script = """\
declare -a xs
local y=1
readarray -t lines < f
mapfile -t more < g
getopts "ab" opt
trap 'rm -f tmp' EXIT
source env.sh
. other.sh
[ -f x ] && test -d y && true && : && false
printf '%s' x; pwd; pushd /tmp; popd; type ls; hash -r; wait; kill %1; ulimit -n 1024; umask 022
"""
    assert script_dependencies(script).commands == ()


def test_script_dependencies_function_shadowing_program() -> None:
    """A function named like a program hides the program (the script calls the function)."""
    script = 'samtools() { command samtools --threads 4 "$@"; }\nsamtools sort x\n'
    result = script_dependencies(script)
    assert result.commands == ()
    assert result.functions == ("samtools",)


def test_script_dependencies_empty_and_comment_only() -> None:
    for script in ("", "   \n\t\n", "#!/bin/bash\n# nothing here\n"):
        result = script_dependencies(script)
        assert result == ScriptDependencies((), (), (), (), analyzed=True)


def test_script_dependencies_crlf_line_endings() -> None:
    script = "set -e\r\nsamtools index x.bam\r\ncat <<EOF\r\n$(date)\r\nEOF\r\ngzip y\r\n"
    assert script_dependencies(script).commands == ("cat", "date", "gzip", "samtools")


NASTY = [
    'echo "unterminated',
    "echo 'unterminated",
    "cat <<EOF\nno end",
    "$(",
    "`",
    "${",
    "$((",
    "((",
    "[[",
    "case",
    "case x in",
    "esac )",
    ")))",
    "(((",
    "{ ; }",
    "f() {",
    "function",
    "| | &&",
    ";;",
    "<<",
    "<<<",
    "2>",
    "\\",
    "\x00\x01\x02",
    "\udcff samtools",
    "$(" * 500 + "ls",
    "`" * 301,
    "$(echo `date $(ls `whoami`)`)",
    "bash -c " * 50 + "'ls'",
    "sh -c 'sh -c \"sh -c ls\"'",
    "a=(",
    "for ((",
    "xargs -n",
    "parallel :::",
    "find . -exec",
    "env -u",
    "timeout",
    "\n" * 1000,
    # bashlex loops forever (and fills memory) on these two.
    "-'${'",
    "<(<<'EOF'\n${\nEOF\n)",
    "x=$(\n" * 40 + "ls\n" + ")\n" * 40,
    "${" * 2000,
    '"$(' * 300,
    "$((" * 300,
]


@pytest.mark.parametrize("script", NASTY, ids=range(len(NASTY)))
def test_script_dependencies_never_raises_on_nasty_input(script: str) -> None:
    result = script_dependencies(script)
    assert isinstance(result, ScriptDependencies)


def test_script_dependencies_never_raises_on_random_input() -> None:
    rng = random.Random(0)
    alphabet = [
        *"abcxyz09 \t\n;&|()<>{}[]$`'\"\\#=*!-:/",
        "$(",
        "<<EOF\n",
        "case ",
        " in ",
        "esac",
        "((",
        "[[ ",
        " ]]",
    ]
    for _ in range(200):
        script = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 80)))
        result = script_dependencies(script)
        assert isinstance(result.commands, tuple)


def test_script_dependencies_speed() -> None:
    """A thousand typical process scripts should take well under two seconds."""
    scripts = [c.script for c in CORPUS] * (1000 // len(CORPUS) + 1)
    start = time.perf_counter()
    for script in scripts[:1000]:
        script_dependencies(script)
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize(
    ("detected", "declared", "expected"),
    [
        (["cat", "sort"], ["!cat", "gromacs"], ("gromacs", "sort")),
        (["cat", "sort"], ["!"], ()),
        (["cat", "sort"], ["!", "gmx"], ("gmx",)),
        (["cat", "sort", "cat"], ["sort", "gzip", "gzip"], ("cat", "gzip", "sort")),
        (["cat"], [], ("cat",)),
        (["cat"], ["!missing"], ("cat",)),
        (["cat"], ["!cat", "cat"], ("cat",)),
        (["zcat", "awk"], [" !awk ", ""], ("zcat",)),
    ],
    ids=[
        "drop-one-add-one",
        "drop-all",
        "drop-all-add",
        "duplicates",
        "none-declared",
        "drop-absent",
        "drop-then-add",
        "blank-and-spaces",
    ],
)
def test_apply_declared_semantics(
    detected: list[str], declared: list[str], expected: tuple[str, ...]
) -> None:
    assert apply_declared(detected, declared) == expected
