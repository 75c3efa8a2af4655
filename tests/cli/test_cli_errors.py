"""Every ``molchannel`` sub-command given bad input says what is wrong, without a traceback.

One case per kind of mistake and sub-command: a path that does not exist, an unknown option or config
key, a value of the wrong type, a file that cannot be parsed (random bytes as a CSV, a YAML config or
a checkpoint), an unknown dataset. Each is run in-process through ``molchannel.cli.main.main`` and must
end with a non-zero status (a return code, or ``SystemExit`` for usage errors of argparse and
jsonargparse), no "Traceback" on stderr, and a message naming the offending thing. Every case fails
before any featurization or training; none needs the benchmark data. Then :func:`run_command` itself: a
bug keeps its traceback, and ``MOLCHANNEL_TRACEBACK=1`` shows that of a user error.
"""

from __future__ import annotations

import random
from pathlib import Path

import lightning.pytorch  # noqa: F401 - see below
import pytest

from molchannel.cli.main import main, run_command

# Lightning gives its loggers a handler on the sys.stderr of the moment it is imported: imported here, that
# is pytest's session stream, not the capsys stream of one test, closed (a logging error) in the next.

REPO = Path(__file__).resolve().parents[2]
PLACES = {
    "tiny": REPO / "configs" / "pretrain" / "tiny.yaml",
    "bbbp": REPO / "configs" / "finetune" / "bbbp.yaml",
    "base": REPO / "configs" / "finetune" / "base.yaml",
    "zinc": REPO / "examples" / "zinc_sample.smi",
}
CSV = "--data.targets [y] --data.task_type regression --output {t}/f"  # fine-tuning on a CSV of one's own

# name: (command line, split at spaces, then {t} and PLACES filled in; text the message must hold).
# {t} is the test's folder, which holds ok.csv (two molecules), garbage.csv/.yaml/.bin (random bytes),
# badkey.yaml (an unknown key), broken.yaml (a YAML syntax error) and cfg/ (a broken cfg/base.yaml).
CASES = {
    # embed, predict, info, export
    "embed-missing-input": ("embed -i {t}/missing.smi -o {t}/o.npy", "missing.smi"),
    "embed-input-is-a-folder": ("embed -i {t} -o {t}/o.npy", "is a folder"),
    "embed-unknown-option": ("embed -i {t}/ok.csv -o {t}/o.npy --bogus", "--bogus"),
    "embed-bad-value": ("embed -i {t}/ok.csv -o {t}/o.npy --batch-size abc", "abc"),
    "embed-bad-choice": ("embed -i {t}/ok.csv -o {t}/o.npy --on-invalid x", "'x'"),
    "embed-garbage-csv": ("embed -i {t}/garbage.csv -o {t}/o.npy", "garbage.csv"),
    "embed-bad-output": ("embed -i {t}/ok.csv -o {t}/o.txt", "o.txt"),
    "embed-missing-model": ("embed -m {t}/nomodel -i {t}/ok.csv -o {t}/o.npy", "nomodel"),
    "predict-missing-model": ("predict -m {t}/nomodel -i {t}/ok.csv -o {t}/o.csv", "nomodel"),
    "predict-garbage-csv": ("predict -m default -i {t}/garbage.csv -o {t}/o.csv", "garbage.csv"),
    "predict-missing-option": ("predict -i {t}/ok.csv -o {t}/o.csv", "-m/--model"),
    "info-missing-model": ("info {t}/nomodel", "nomodel"),
    "info-garbage-file": ("info {t}/garbage.bin", "garbage.bin"),
    "export-missing-checkpoint": ("export {t}/missing.ckpt -o {t}/m", "missing.ckpt"),
    "export-garbage-checkpoint": ("export {t}/garbage.bin -o {t}/m", "garbage.bin"),
    # prepare
    "prepare-missing-input": ("prepare -i {t}/missing.smi -o {t}/c --no-leakage-filter", "missing.smi"),
    "prepare-garbage-csv": ("prepare -i {t}/garbage.csv -o {t}/c --no-leakage-filter", "garbage.csv"),
    "prepare-bad-value": ("prepare -i {t}/ok.csv -o {t}/c --n-stored abc", "abc"),
    "prepare-unknown-dataset": ("prepare -i {t}/ok.csv -o {t}/c --leakage-datasets nosuchset", "nosuchset"),
    "prepare-missing-keys": ("prepare -i {t}/ok.csv -o {t}/c --heldout-keys {t}/keys.txt", "keys.txt"),
    # perturb: its own argparse parser
    "perturb-missing-input": ("perturb {t}/missing.smi {t}/p", "missing.smi"),
    "perturb-garbage-csv": ("perturb {t}/garbage.csv {t}/p", "garbage.csv"),
    "perturb-unknown-option": ("perturb {t}/ok.csv {t}/p --bogus", "--bogus"),
    "perturb-bad-value": ("perturb {t}/ok.csv {t}/p --n-keep abc", "abc"),
    "perturb-bad-number": ("perturb {t}/ok.csv {t}/p --n-keep 0", "n_keep"),
    "perturb-unknown-method": ("perturb {t}/ok.csv {t}/p --method nosuch", "nosuch"),
    "perturb-crem-without-db": ("perturb {t}/ok.csv {t}/p --method crem", "--crem-db"),
    "perturb-missing-crem-db": ("perturb {t}/ok.csv {t}/p --method crem --crem-db {t}/frag.db", "frag.db"),
    "perturb-output-is-a-file": ("perturb {t}/ok.csv {t}/garbage.bin", "garbage.bin"),
    # finetune: jsonargparse
    "finetune-missing-config": ("finetune --config {t}/missing.yaml", "missing.yaml"),
    "finetune-garbage-config": ("finetune --config {t}/garbage.yaml", "garbage.yaml"),
    "finetune-broken-config": ("finetune --config {t}/broken.yaml", "broken.yaml"),
    "finetune-unknown-config-key": ("finetune --config {t}/badkey.yaml", "no_such_key"),
    "finetune-unknown-option": ("finetune --config {bbbp} --bogus 1", "--bogus"),
    "finetune-bad-value": ("finetune --config {bbbp} --optim.epochs abc", "optim.epochs"),
    "finetune-bad-choice": ("finetune --config {bbbp} --data.task_type nosuch", "data.task_type"),
    "finetune-unknown-dataset": (
        "finetune --config {base} --data.dataset nosuchset --output {t}/f",
        "nosuchset",
    ),
    "finetune-missing-csv": (
        f"finetune --config {{base}} --data.path {{t}}/missing.csv {CSV}",
        "missing.csv",
    ),
    "finetune-garbage-csv": (
        f"finetune --config {{base}} --data.path {{t}}/garbage.csv {CSV}",
        "garbage.csv",
    ),
    # pretrain: LightningCLI. Errors of the data module's arguments, raised before it prepares a corpus.
    # Not here: errors of the model's or trainer's arguments (--model.encoder.backbone nosuch), which the
    # data module's instantiation precedes, corpus preparation included: a heavy start.
    "pretrain-missing-config": ("pretrain --config {t}/missing.yaml", "missing.yaml"),
    "pretrain-garbage-config": ("pretrain --config {t}/garbage.yaml", "garbage.yaml"),
    "pretrain-broken-config": ("pretrain --config {t}/broken.yaml", "broken.yaml"),
    "pretrain-unknown-config-key": ("pretrain --config {t}/badkey.yaml", "no_such_key"),
    "pretrain-unknown-option": ("pretrain --config {tiny} --bogus 1", "--bogus"),
    "pretrain-bad-value": ("pretrain --config {tiny} --trainer.max_epochs abc", "max_epochs"),
    "pretrain-missing-corpus": (
        "pretrain --config {tiny} --data.corpus {t}/corpus --data.source null",
        "corpus",
    ),
    "pretrain-missing-source": (
        "pretrain --config {tiny} --data.corpus {t}/c --data.source {t}/missing.smi",
        "missing.smi",
    ),
    "pretrain-unknown-dataset": (
        "pretrain --config {tiny} --data.corpus {t}/c --data.source {zinc} --data.leakage_datasets [nosuch]",
        "nosuch",
    ),
    # benchmark
    "benchmark-unknown-collection": ("benchmark nosuchcollection", "nosuchcollection"),
    "benchmark-unknown-dataset": ("benchmark moleculenet --datasets nosuchset --output {t}/b", "nosuchset"),
    "benchmark-bad-value": ("benchmark moleculenet --seeds x", "'x'"),
    "benchmark-unknown-config-key": ("benchmark moleculenet --datasets bbbp --set nosuch.key=1", "nosuch"),
    "benchmark-bad-config-type": (
        "benchmark moleculenet --datasets bbbp --set optim.epochs=ten",
        "optim.epochs",
    ),
    "benchmark-unparsable-set": ("benchmark moleculenet --datasets bbbp --set data.limit=[1,", "data.limit"),
    "benchmark-broken-config-dir": (
        "benchmark moleculenet --datasets bbbp --config-dir {t}/cfg",
        "base.yaml",
    ),
    "benchmark-missing-config-dir": ("benchmark moleculenet --config-dir {t}/nocfg", "nocfg"),
    "benchmark-probe-missing-model": ("benchmark probe --model {t}/nomodel --output {t}/b", "nomodel"),
    "benchmark-probe-unknown-dataset": (
        "benchmark probe --model default --datasets nosuchset --output {t}/b",
        "nosuchset",
    ),
}


@pytest.fixture()
def bad_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The files of CASES in ``tmp_path``, which is also the working directory (runs write nothing else)."""
    garbage = b"\xff\xfe" + random.Random(0).randbytes(3000)  # not UTF-8, no table, no checkpoint
    for name in ("garbage.csv", "garbage.yaml", "garbage.bin"):
        (tmp_path / name).write_bytes(garbage)
    (tmp_path / "ok.csv").write_text("smiles\nCCO\nc1ccccc1\n")
    (tmp_path / "badkey.yaml").write_text("no_such_key: 1\n")
    (tmp_path / "broken.yaml").write_text("data: [1, 2\n  optim: {\n")
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "base.yaml").write_text("optim: {epochs: 1\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MOLCHANNEL_TRACEBACK", raising=False)
    monkeypatch.delenv("MOLCHANNEL_DATA_DIR", raising=False)
    monkeypatch.setenv("MOLCHANNEL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MOLCHANNEL_PROGRESS", "none")
    return tmp_path


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_clear_message(
    case: str, bad_files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command, expected = CASES[case]
    argv = [arg.format(t=bad_files, **PLACES) for arg in command.split()]
    try:
        code = main(argv)
    except SystemExit as exit_info:  # a usage error of argparse or jsonargparse
        code = exit_info.code
    err = capsys.readouterr().err
    assert code not in (0, None), f"{case}: exit status {code!r}\n{err}"
    assert "Traceback" not in err, f"{case}: traceback on stderr\n{err}"
    assert expected in err, f"{case}: the message does not name {expected!r}\n{err}"


def test_a_bug_keeps_its_traceback_and_asks_for_a_report() -> None:
    def broken() -> int:
        raise TypeError("unsupported operand")

    with pytest.raises(TypeError, match="unsupported operand") as exc_info:
        run_command("embed", broken)
    assert any("please report it" in note for note in exc_info.value.__notes__)


def test_lightning_configuration_errors_are_user_errors(capsys: pytest.CaptureFixture[str]) -> None:
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    def misconfigured() -> int:
        raise MisconfigurationException("`--trainer.devices 3` needs 3 devices")

    assert run_command("pretrain", misconfigured) == 1
    assert capsys.readouterr().err == "molchannel pretrain: error: `--trainer.devices 3` needs 3 devices\n"


def test_traceback_of_a_user_error_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> int:
        raise FileNotFoundError("input file x.smi does not exist")

    assert run_command("embed", missing) == 1
    monkeypatch.setenv("MOLCHANNEL_TRACEBACK", "1")
    with pytest.raises(FileNotFoundError, match="x.smi"):
        run_command("embed", missing)
