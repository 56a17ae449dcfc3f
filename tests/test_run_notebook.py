"""scripts/run_notebook.py stores progress bars as a live notebook shows them, and nothing else changes."""
import importlib.util
from pathlib import Path

import nbformat

_spec = importlib.util.spec_from_file_location("run_notebook", Path(__file__).parents[1] / "scripts" / "run_notebook.py")
rn = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rn)


def test_carriage_returns_and_nested_bars_keep_the_final_state():
    assert rn._overwrite("x:  0%\rx: 50%\rx: 100%\ndone\n") == "x: 100%\ndone\n"
    # tqdm's nested bar: newline, carriage return, text, cursor up
    nested = "outer 0%\n\rinner 1\x1b[A\n\rinner 2\x1b[A\router 50%"
    assert rn._overwrite(nested) == "outer 50%\ninner 2\n"
    assert rn._overwrite("bar 10%\r" + " " * 20 + "\r") == ""  # a bar erased on close (leave=False)
    assert rn._overwrite("plain\ntext 3.5 [2.0, 4.1]\n") == "plain\ntext 3.5 [2.0, 4.1]\n"


def test_tidy_merges_consecutive_streams_of_one_name_only():
    nb = nbformat.v4.new_notebook()
    c = nbformat.v4.new_code_cell("x")
    c.outputs = [nbformat.v4.new_output("stream", name="stderr", text="a 0%\r"),
                 nbformat.v4.new_output("stream", name="stderr", text="a 100%\n"),
                 nbformat.v4.new_output("stream", name="stdout", text="result 1\n"),
                 nbformat.v4.new_output("execute_result", data={"text/plain": "2"}, execution_count=1),
                 nbformat.v4.new_output("stream", name="stdout", text="after\n")]
    nb.cells = [c]
    rn.tidy(nb)
    assert [(o.output_type, o.get("text")) for o in c.outputs] == [
        ("stream", "a 100%\n"), ("stream", "result 1\n"), ("execute_result", None), ("stream", "after\n")]
