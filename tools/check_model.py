#!/usr/bin/python3
"""Runs onnx.checker.check_model(full_check=True) on each MODEL.

Prints "ok PATH" per valid model; otherwise "check_model: PATH: <first line of
the error>". full_check adds strict shape inference; when only that part fails
(the structural check passes) the line says so, since it is often about
symbolic dims rather than a broken graph. Exit 0 when all pass, 1 when any
fails, 2 on usage errors.
"""
import sys

import onnx


def first_line(exc):
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return f"{type(exc).__name__}: " + (lines[0] if lines else "(no message)")


def check(path):
    """None when path passes, else the line to print."""
    try:
        model = onnx.load(path)
    except Exception as exc:  # noqa: BLE001 - unreadable file or bad protobuf
        return f"check_model: {path}: cannot load: {first_line(exc)}"
    try:
        onnx.checker.check_model(model, full_check=True)
        return None
    except Exception as exc:  # noqa: BLE001 - report any checker failure
        full_error = first_line(exc)
    try:
        onnx.checker.check_model(model, full_check=False)
    except Exception as exc:  # noqa: BLE001
        return f"check_model: {path}: {first_line(exc)}"
    dim_params = {d.dim_param for vi in list(model.graph.input) + list(model.graph.output)
                  + list(model.graph.value_info)
                  for d in vi.type.tensor_type.shape.dim if d.dim_param}
    about_symbolic = "symbolic" in full_error.lower() or any(p in full_error for p in dim_params)
    hint = " (the error is about symbolic dims only)" if about_symbolic else ""
    return (f"check_model: {path}: structure ok, strict shape inference (full_check) failed{hint}: "
            f"{full_error}")


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print("usage: check_model.py MODEL.onnx...", file=sys.stderr)
        return 2
    failed = 0
    for path in argv[1:]:
        problem = check(path)
        if problem:
            print(problem)
            failed += 1
        else:
            print(f"ok {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
