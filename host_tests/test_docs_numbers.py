"""The numbers, names and links the docs quote, held against the code (issue 16, item 8),
so that they cannot drift: the safety numbers of docs/requirements.md against
firmware/limits.py, the firmware version and file counts in sample outputs against the
manifest, the simulator's command and end-reason lists against the code, every `make`
target and variable the docs name against the Makefile, relative links and their
anchors against the files, and no citation of a document the repository does not have.
"""

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools import manifest as mf  # noqa: E402

DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]


def constants(path):
    """{NAME: int} of `NAME = const(N)` / `NAME = N` lines."""
    out = {}
    for m in re.finditer(r"^([A-Z][A-Z0-9_]*)\s*=\s*(?:const\()?(-?\d+)\)?", path.read_text(),
                         re.M):
        out[m.group(1)] = int(m.group(2))
    return out


def numbers(text):
    """Every number in `text` (thousands separators and ranges split)."""
    return [float(x.replace(",", "")) for x in re.findall(r"\d[\d,]*(?:\.\d+)?", text)]


def renderings(name, value):
    """The ways a constant may be written in the docs' units."""
    if name.endswith("_UAMIN"):
        return {value / 1000.0}
    if name.endswith("_UA"):
        return {value, value / 1000.0}
    if name.endswith("_MS"):
        return {value, value / 1000.0, value / 60000.0}
    if name.endswith("_S"):
        return {value, value / 60.0}
    if name.endswith("_PM"):
        return {value, value / 1000.0}
    return {value}


def test_requirements_numbers_are_the_firmware_limits():
    limits = constants(ROOT / "firmware" / "limits.py")
    text = (ROOT / "docs" / "requirements.md").read_text()
    checked = 0
    for row in text.splitlines():
        if not row.startswith("|"):
            continue
        cells = row.split("|")
        if len(cells) < 4:
            continue
        bold = numbers(" ".join(re.findall(r"\*\*([^*]+)\*\*", row)))
        for name in re.findall(r"limits\.([A-Z_]+)", row):
            assert name in limits, "requirements.md names limits.%s, which is not there" % name
            want = renderings(name, limits[name])
            assert any(abs(b - w) < 1e-9 for b in bold for w in want), (
                "requirements.md: %s = %s, but the row says %s" % (name, limits[name], bold))
            checked += 1
    assert checked >= 15, checked


def test_the_control_period_quoted_is_every_boards():
    text = (ROOT / "docs" / "requirements.md").read_text()
    row = next(r for r in text.splitlines() if "CONTROL_PERIOD_US" in r)
    for board in mf.boards():
        us = constants(ROOT / "boards" / ("%s.py" % board))["CONTROL_PERIOD_US"]
        assert us / 1000.0 in numbers(re.findall(r"\*\*([^*]+)\*\*", row)[0]), board


def sample_lines(path):
    """The indented lines of a doc (its sample commands and outputs)."""
    return [line for line in path.read_text().splitlines() if line.startswith("    ")]


def test_sample_outputs_quote_this_firmware_version_and_file_count():
    version = mf.firmware_version()
    n_sim = len(mf.sources("sim"))
    seen_version = seen_count = 0
    for path in DOCS:
        for line in sample_lines(path):
            for v in re.findall(r"firmware (\d+\.\d+\.\d+)", line):
                assert v == version, "%s: %r quotes firmware %s, not %s" % (
                    path.name, line.strip(), v, version)
                seen_version += 1
            if path.name == "flashing.md":
                for n in re.findall(r"(\d+) files", line) + re.findall(r"\[\s*\d+/(\d+)\]",
                                                                       line):
                    assert int(n) == n_sim, "flashing.md: %r: the sim image has %d files" % (
                        line.strip(), n_sim)
                    seen_count += 1
    assert seen_version >= 3 and seen_count >= 4, (seen_version, seen_count)


def test_simulator_doc_lists_every_command_and_end_reason():
    text = (ROOT / "docs" / "simulator.md").read_text()
    from simulation import scenario
    row = next(r for r in text.splitlines() if r.startswith("| `command` |"))
    for c in scenario.COMMANDS:
        assert "`%s`" % c in row, "simulator.md: command %s is not listed" % c
    session = (ROOT / "firmware" / "session.py").read_text()
    names = re.search(r"END_NAMES = \(([^)]*)\)", session, re.S).group(1)
    row = next(r for r in text.splitlines() if r.startswith("| `end_reason` |"))
    for name in re.findall(r'"(\w+)"', names):
        assert "`%s`" % name in row, "simulator.md: end_reason %s is not listed" % name


def makefile_targets_and_vars():
    text = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z0-9-]*)\s*:", text, re.M))
    variables = set(re.findall(r"\$\((?:if |or |foreach \w+,)?\$?\(?([A-Z_]+)\)?", text))
    variables |= set(re.findall(r"^([A-Z_]+)\s*[?:]?=", text, re.M))
    return targets, variables


def make_commands(text):
    """The `make ...` commands a doc shows: in code spans and on indented lines."""
    found = re.findall(r"`(make [^`]+)`", text)
    found += [line.strip() for line in text.splitlines()
              if line.startswith("    ") and line.strip().startswith("make ")]
    return found


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_every_make_target_and_variable_the_docs_name_exists(path):
    targets, variables = makefile_targets_and_vars()
    seen = 0
    for cmd in make_commands(path.read_text()):
        words = cmd.split("#")[0].replace("[", " ").replace("]", " ").split()
        if len(words) < 2 or not re.match(r"[a-z][a-z0-9-]*$", words[1]):
            continue
        assert words[1] in targets, "%s: `%s`: no such target" % (path.name, cmd)
        for w in words[2:]:
            m = re.match(r"([A-Z_]+)=", w)
            if m:
                assert m.group(1) in variables, "%s: `%s`: the Makefile has no %s" % (
                    path.name, cmd, m.group(1))
        seen += 1
    if path.name in ("walkthrough.md", "README.md", "tools.md", "flashing.md"):
        assert seen >= 5, (path.name, seen)


def slug(heading):
    """GitHub's anchor for a heading."""
    h = heading.strip().lower().replace("`", "")
    h = re.sub(r"[^\w\- ]", "", h)
    return h.replace(" ", "-")


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_relative_links_and_anchors_resolve(path):
    text = path.read_text()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue                                   # http:, https:, mailto:
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        assert dest.exists(), "%s links to %s, which does not exist" % (path.name, target)
        if anchor and dest.suffix == ".md":
            heads = [slug(h) for h in re.findall(r"^#+ (.+)$", dest.read_text(), re.M)]
            assert anchor in heads, "%s links to %s: no such heading in %s" % (
                path.name, target, dest.name)


def test_no_citation_of_a_document_the_repository_does_not_have():
    where = DOCS + sorted((ROOT / "tools").glob("*.py")) + \
        sorted((ROOT / "host_tests").glob("*.py")) + sorted((ROOT / "simulation").glob("*.py"))
    bad = [p.name for p in where if p.name != Path(__file__).name
           and "ARCHITECTURE \u00a7" in p.read_text()]
    assert bad == []


def test_the_calibration_doc_quotes_the_size_of_the_refusal_table():
    sys.path.insert(0, str(ROOT / "host_tests"))
    from test_calibrate_refusals import CASES
    text = (ROOT / "docs" / "tools.md").read_text()
    m = re.search(r"runs (\d+) such cases", text)
    assert m and int(m.group(1)) == len(CASES)
