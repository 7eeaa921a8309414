"""notebooks/execute.py: the structural checks, and the committed notebooks pass them.

Executing the notebooks is ``make notebooks-check`` (CI) and the slow test below."""

from __future__ import annotations

import copy

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from notebooks import execute


def executed_notebook() -> nbformat.NotebookNode:
    nb = new_notebook()
    a = new_code_cell("x = 1\nprint(x)", execution_count=1)
    a.outputs = [
        new_output("stream", name="stdout", text="1\n"),
        new_output("stream", name="stderr", text="some warning\n"),
    ]
    b = new_code_cell("fig = plot()", execution_count=2)
    b.outputs = [new_output("display_data", data={"image/png": "AAAA", "text/plain": "<Figure>"})]
    nb.cells = [new_markdown_cell("# title"), a, b]
    return nb


def test_output_kinds_merge_streams_and_ignore_stderr() -> None:
    cell = executed_notebook().cells[1]
    cell.outputs.append(new_output("stream", name="stdout", text="more\n"))
    assert execute.output_kinds(cell) == ["stream:stdout"]
    img = executed_notebook().cells[2]
    assert execute.output_kinds(img) == ["display:image/png"]


def test_static_problems_flags_unrun_and_error_cells() -> None:
    nb = executed_notebook()
    assert execute.static_problems(nb) == []
    nb.cells[2].execution_count = None
    nb.cells[1].outputs.append(new_output("error", ename="ValueError", evalue="x", traceback=[]))
    problems = execute.static_problems(nb)
    assert any("execution_count" in p for p in problems)
    assert any("error output" in p for p in problems)
    empty = executed_notebook()
    for c in empty.cells[1:]:
        c.outputs = []
    assert any("no code cell has outputs" in p for p in execute.static_problems(empty))


def test_compare_detects_edited_source_and_missing_figure() -> None:
    committed = executed_notebook()
    fresh = copy.deepcopy(committed)
    fresh.cells[1].outputs.pop()  # stderr noise may come and go
    assert execute.compare(committed, fresh) == []
    fresh.cells[2].outputs = []
    fresh.cells[1].source = "x = 2\nprint(x)"
    problems = execute.compare(committed, fresh)
    assert any("source differs" in p for p in problems)
    assert any("image/png" in p for p in problems)
    fresh.cells.append(new_code_cell("y = 3"))
    assert execute.compare(committed, fresh) == ["2 code cells committed, 3 executed"]


def test_compare_flags_stale_values_unless_the_cell_is_volatile() -> None:
    committed = executed_notebook()
    fresh = copy.deepcopy(committed)
    fresh.cells[1].outputs[0].text = "2\n"
    assert execute.compare(committed, fresh) == [
        "code cell 1: stale values (committed 1, fresh run 2; re-run with --write)"
    ]
    committed.cells[1].metadata["tags"] = [execute.VOLATILE_TAG]
    assert execute.compare(committed, fresh) == []


@pytest.mark.parametrize(
    ("committed", "fresh", "same"),
    [
        ("APGR 0.643\n", "APGR 0.644\n", True),  # one unit of the last printed digit
        ("APGR 0.643\n", "APGR 0.645\n", False),
        ("n = 2,085 rows", "n = 2,085 rows", True),
        ("n = 2,085 rows", "n = 2,086 rows", False),  # counts are exact
        ("p 1.5e-07", "p 1.6e-07", True),
        ("p 1.5e-07", "p 1.9e-07", False),
        ("model learned-20261122-a1b9691e", "model learned-20261201-0000ffff", True),
        ("model learned-20261122-a1b9691e", "model default", False),
        ("heuristic 0.5", "learned 0.5", False),
        ("a\nb\n", "a\n", False),
    ],
)
def test_value_differences(committed: str, fresh: str, same: bool) -> None:
    nb_a, nb_b = executed_notebook(), executed_notebook()
    nb_a.cells[1].outputs = [new_output("stream", name="stdout", text=committed)]
    nb_b.cells[1].outputs = [new_output("stream", name="stdout", text=fresh)]
    a, b = execute.printed_text(nb_a.cells[1]), execute.printed_text(nb_b.cells[1])
    assert (execute.value_differences(a, b) is None) is same


def test_printed_text_reads_stdout_and_plain_text_but_not_figures_or_stderr() -> None:
    cell = executed_notebook().cells[1]
    cell.outputs.append(new_output("execute_result", data={"text/plain": "df"}, execution_count=1))
    assert execute.printed_text(cell) == "1\ndf\n"
    assert execute.printed_text(executed_notebook().cells[2]) == ""


def test_notebook_names_are_resolved() -> None:
    assert [p.name for p in execute.notebook_paths(["latency"])] == ["latency.ipynb"]
    with pytest.raises(SystemExit):
        execute.notebook_paths(["nope"])


@pytest.mark.parametrize("name", execute.NOTEBOOKS)
def test_committed_notebooks_are_executed_and_keep_logic_out_of_cells(name: str) -> None:
    nb = nbformat.read(execute.NOTEBOOK_DIR / name, as_version=4)
    nbformat.validate(nb)
    assert execute.static_problems(nb) == []
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert any("display:image/png" in execute.output_kinds(c) for c in code)
    for cell in code:  # cells call library code; they define nothing themselves
        assert "def " not in cell.source and "class " not in cell.source, cell.source


@pytest.mark.slow
def test_latency_notebook_executes_and_matches_committed_structure() -> None:
    ok, _, problems = execute.run_one(execute.NOTEBOOK_DIR / "latency.ipynb", "check")
    assert ok, problems
