import yolossl


def test_public_names_are_deliberate() -> None:
    assert sorted(yolossl.__all__) == [
        "CycleConfig",
        "CycleResult",
        "Metrics",
        "RoundResult",
        "YolosslError",
        "__version__",
        "resume_cycle",
        "run_cycle",
    ]
    for name in yolossl.__all__:
        assert hasattr(yolossl, name)


def test_importing_does_not_import_the_training_engine() -> None:
    import subprocess
    import sys

    code = "import sys, yolossl; print('ultralytics' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
