"""Folders: mirrored trees, formats, resume, corrupt files, input protection, `i2i translate/upscale`."""
from __future__ import annotations

import os

import numpy as np
import pytest

from conftest import run_cli as run
from i2i.data.io import read_image, write_image
from i2i.inference import folder as folder_module
from i2i.inference.folder import natural_key, plan_outputs, translate_path
from i2i.inference.translator import Translator
from test_translator import photo, tiny_resnet, tiny_sr



@pytest.fixture
def tree(tmp_path):
    """A small tree: odd sizes, gray, RGBA 16-bit, nested folders."""
    src = tmp_path / "in"
    write_image(src / "a.png", photo(21, 30))
    write_image(src / "b.jpg", photo(21, 30))
    write_image(src / "sub" / "gray.png", photo(17, 9, channels=1))
    rgba = np.concatenate([photo(12, 13, dtype=np.uint16), np.full((12, 13, 1), 40000, np.uint16)], axis=2)
    write_image(src / "sub" / "deep" / "alpha16.png", rgba)
    return src


@pytest.fixture
def sr_from_file(monkeypatch):
    """Make `--model NAME` load the tiny x2 upscaler (tests must not depend on bundled models)."""
    asked = []

    def from_file(path, *, direction=None, device="cpu", **options):
        asked.append(str(path))
        return tiny_sr(**options)

    monkeypatch.setattr(Translator, "from_file", staticmethod(from_file))
    return asked


def hidden_files(folder):
    return [p for p in folder.rglob(".*")]


def test_a_tree_is_mirrored_with_suffix_format_and_quality(tree, tmp_path):
    translator = tiny_sr()
    report = translate_path(translator, tree, tmp_path / "out", suffix="_x2", ext="webp", quality=90, progress=False)
    assert len(report.written) == 4 and not report.failed
    out = tmp_path / "out"
    assert read_image(out / "a_x2.webp").shape == (42, 60, 3)
    assert read_image(out / "sub" / "gray_x2.webp").shape == (34, 18, 3)
    assert read_image(out / "sub" / "deep" / "alpha16_x2.webp").shape == (24, 26, 4)
    assert not hidden_files(out)  # no temporary files left behind
    low = translate_path(translator, tree / "a.png", tmp_path / "q" / "a.jpg", quality=10, progress=False)
    high = translate_path(translator, tree / "a.png", tmp_path / "q" / "b.jpg", quality=95, progress=False)
    assert low.written and high.written
    assert (tmp_path / "q" / "a.jpg").stat().st_size < (tmp_path / "q" / "b.jpg").stat().st_size
    translate_path(translator, tree, tmp_path / "png", progress=False)
    assert read_image(tmp_path / "png" / "sub" / "deep" / "alpha16.png").dtype == np.uint16  # 16 bits kept


def test_resume_skips_existing_outputs_and_overwrite_replaces_them(tree, tmp_path):
    out = tmp_path / "out"
    translator = tiny_resnet()
    assert len(translate_path(translator, tree, out, progress=False).written) == 4
    stamp = (out / "a.png").stat().st_mtime_ns
    (out / "sub" / "gray.png").unlink()  # as if the run had been interrupted before this one
    again = translate_path(translator, tree, out, progress=False)
    assert again.written == [out / "sub" / "gray.png"] and len(again.skipped) == 3
    assert (out / "a.png").stat().st_mtime_ns == stamp
    forced = translate_path(translator, tree, out, overwrite=True, progress=False)
    assert len(forced.written) == 4 and not forced.skipped


def test_an_interrupted_run_leaves_whole_files_and_resumes(tree, tmp_path, monkeypatch):
    translator = tiny_resnet(batch_size=1)
    real = translator.translate_images
    calls = []

    def interrupted(images):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(images)

    monkeypatch.setattr(translator, "translate_images", interrupted)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        translate_path(translator, tree, out, progress=False)
    done = sorted(p for p in out.rglob("*") if p.is_file())
    assert len(done) == 2 and not hidden_files(out)
    for path in done:
        read_image(path)  # complete, decodable files
    monkeypatch.setattr(translator, "translate_images", real)
    report = translate_path(translator, tree, out, progress=False)
    assert len(report.written) == 2 and len(report.skipped) == 2


def test_corrupt_files_are_reported_and_the_rest_is_processed(tree, tmp_path, sr_from_file):
    (tree / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (tree / "sub" / "notes.jpg").write_text("this is text")
    good = (tree / "a.png").read_bytes()
    (tree / "sub" / "cut.png").write_bytes(good[: len(good) // 2])
    report = translate_path(tiny_resnet(), tree, tmp_path / "out", progress=False)
    assert len(report.written) == 4
    failed = {path.name: reason for path, reason in report.failed}
    assert set(failed) == {"broken.png", "notes.jpg", "cut.png"}
    assert "truncated" in failed["cut.png"]
    assert all(str(tree) in str(path) for path, _ in report.failed)

    result = run("translate", "--model", "any", tree, tmp_path / "cli", code=1)
    assert "4 written, 0 skipped (exist), 3 failed." in result.output
    assert "broken.png" in result.output and "Traceback" not in result.output


def test_the_input_folder_is_protected(tree, tmp_path):
    with pytest.raises(ValueError, match="inside the input folder"):
        plan_outputs(tree, tree / "out")
    # Asked for: outputs go next to the inputs, and are never taken as inputs on the next run.
    report = translate_path(tiny_resnet(), tree, tree, suffix="_t", allow_inside_input=True, progress=False)
    assert len(report.written) == 4 and (tree / "a_t.png").exists()
    again = translate_path(tiny_resnet(), tree, tree, suffix="_t", allow_inside_input=True, progress=False)
    assert len(again.skipped) == 4 and not again.written  # a_t.png is not translated into a_t_t.png
    # An output may never replace an input, not even another input file.
    with pytest.raises(ValueError, match="overwrite the input"):
        plan_outputs(tree, tree, allow_inside_input=True)
    with pytest.raises(ValueError, match="would overwrite the input"):
        plan_outputs(tree, tree, ext="jpg", allow_inside_input=True)  # b.jpg would be written over itself


def test_an_output_that_is_another_input_is_refused(tmp_path):
    write_image(tmp_path / "in" / "x.png", photo(8, 8))
    write_image(tmp_path / "in" / "x.jpg", photo(8, 8))
    with pytest.raises(ValueError, match="x.jpg"):
        plan_outputs(tmp_path / "in", tmp_path / "in", ext="jpg", allow_inside_input=True)


def test_same_size_images_are_batched(tmp_path):
    for i in range(5):
        write_image(tmp_path / "in" / f"{i}.png", photo(16, 24))
    translator = tiny_resnet(batch_size=4)
    sizes = []
    real = translator.translate_images
    translator.translate_images = lambda images: sizes.append(len(images)) or real(images)
    report = translate_path(translator, tmp_path / "in", tmp_path / "out", progress=False)
    assert len(report.written) == 5 and sizes == [4, 1]


def test_natural_order_puts_frame_2_before_frame_10():
    names = ["f10.png", "f2.png", "f1.png"]
    assert sorted(names, key=lambda n: natural_key(n)) == ["f1.png", "f2.png", "f10.png"]


def test_upscale_command_defaults_to_x4_and_shows_progress(tree, tmp_path, sr_from_file):
    result = run("upscale", tree / "a.png", tmp_path / "a_big.png")
    assert sr_from_file == ["x4"]
    assert "1 written" in result.output and "img/s" in result.output
    assert read_image(tmp_path / "a_big.png").shape == (42, 60, 3)
    result = run("upscale", tree, tmp_path / "up", "--tile", "16", "--tile-overlap", "4", "--batch-size", "2", "--ext", "png")
    assert "4 written" in result.output
    # An upscaler gives gray for gray, as Real-ESRGAN does (it used to give 3 channels).
    assert read_image(tmp_path / "up" / "sub" / "gray.png").shape == (34, 18, 1)


def test_cli_option_mistakes_are_one_line_errors(tree, tmp_path, sr_from_file):
    # A wrong option value exits with the usage status 2; a problem with the files with 1.
    result = run("upscale", tree, tmp_path / "o", "--tile", "16", "--tile-overlap", "12", code=2)
    assert "Error:" in result.output and "--tile-overlap" in result.output and "Traceback" not in result.output
    result = run("translate", "--model", "m", tree, tree / "out", code=1)
    assert "inside the input folder" in result.output
    result = run("translate", "--model", "m", tree, tmp_path / "o2", "--ext", "gif", code=2)
    assert "not supported" in result.output


def test_never_writes_partial_files_even_when_a_write_fails(tree, tmp_path, monkeypatch):
    real = folder_module.write_image

    def flaky(path, image, quality=None, metadata=None):
        if path.name == "a.png":
            raise OSError("disk full (simulated)")
        real(path, image, quality=quality, metadata=metadata)

    monkeypatch.setattr(folder_module, "write_image", flaky)
    report = translate_path(tiny_resnet(), tree, tmp_path / "out", progress=False)
    assert [p.name for p, _ in report.failed] == ["a.png"] and "disk full" in report.failed[0][1]
    assert len(report.written) == 3 and not (tmp_path / "out" / "a.png").exists()
    assert os.listdir(tmp_path / "out")  # the others are there


def test_unsupported_files_are_listed_in_the_summary_not_failed(tree, tmp_path, sr_from_file):
    (tree / "notes.txt").write_text("not an image")
    (tree / "sub" / "clip.gif").write_bytes(b"GIF89a")
    (tree / ".hidden").write_text("hidden files are not mentioned")
    result = run("upscale", tree, tmp_path / "out")  # exit status 0: nothing failed
    summary = result.output.strip().splitlines()[-1]
    assert "4 written" in summary and "0 failed" in summary
    assert "2 other file(s) left out, not a supported image type" in summary
    assert "clip.gif" in summary and "notes.txt" in summary and ".hidden" not in summary
    report = translate_path(tiny_sr(), tree, tmp_path / "api", progress=False)
    assert [p.name for p in report.unsupported] == ["notes.txt", "clip.gif"] and not report.failed


def test_side_by_side_pairs_into_pix2pix_give_one_warning(tmp_path, monkeypatch):
    from i2i.checkpoint import GeneratorInfo

    def pix2pix(**options):
        plain = tiny_resnet(**options)
        info = GeneratorInfo(model="resnet", kwargs=plain.info.kwargs, task="pix2pix")
        return Translator(plain.module, info, device="cpu", **options)

    monkeypatch.setattr(Translator, "from_file", staticmethod(lambda path, direction=None, device="cpu", **o: pix2pix(**o)))
    for name in ("1.jpg", "2.jpg"):
        write_image(tmp_path / "pairs" / name, photo(16, 32))  # A|B: width == 2 x height
    result = run("translate", "-m", "m", tmp_path / "pairs", tmp_path / "out")
    warnings = [line for line in result.output.splitlines() if line.startswith("Warning:")]
    assert len(warnings) == 1 and "i2i test RUN_OR_MODEL --data DATASET_ROOT" in warnings[0]
    assert "2 written" in result.output  # a warning, not a refusal

    write_image(tmp_path / "mixed" / "1.jpg", photo(16, 32))
    write_image(tmp_path / "mixed" / "2.jpg", photo(16, 30))  # one ordinary picture: no warning
    assert "Warning:" not in run("translate", "-m", "m", tmp_path / "mixed", tmp_path / "out2").output
    monkeypatch.setattr(Translator, "from_file", staticmethod(lambda path, direction=None, device="cpu", **o: tiny_resnet(**o)))
    assert "Warning:" not in run("translate", "-m", "m", tmp_path / "pairs", tmp_path / "out3").output  # not pix2pix


@pytest.mark.parametrize("command", ["translate", "upscale", "video"])
@pytest.mark.parametrize("device", ["foo", "mps"])
def test_a_device_that_is_not_there_is_one_line_on_every_command(command, device, tmp_path, sr_from_file):
    import torch

    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    write_image(tmp_path / "frames" / "0001.png", photo(8, 8))
    result = run(command, "-m", "m", "--device", device, tmp_path / "frames", tmp_path / "out", code=2)
    assert result.output.startswith("Error: --device") and device in result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert sr_from_file == []  # refused before the model is loaded


@pytest.mark.parametrize("command", ["translate", "upscale"])
def test_a_published_discriminator_name_is_refused_before_downloading(command, tmp_path, monkeypatch):
    from i2i import catalogue

    def no_download(*args, **kwargs):
        raise AssertionError("nothing may be downloaded")

    monkeypatch.setattr(catalogue, "download_pretrained", no_download)
    monkeypatch.chdir(tmp_path)
    write_image(tmp_path / "a.png", photo(8, 8))
    result = run(command, "-m", "RealESRGAN_x4plus_netD", "--device", "cpu", "a.png", "out", code=1)
    assert result.output.count("\n") == 1 and "is a discriminator" in result.output
    assert "--model RealESRGAN_x4plus" in result.output and not (tmp_path / "out").exists()
