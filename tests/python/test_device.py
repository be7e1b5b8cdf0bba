"""The one --device rule (seqalignatac.device) that embed, stage 1 and stage 2 share."""

import pytest
import torch

from seqalignatac import device as device_module
from seqalignatac.device import resolve_device
from seqalignatac.errors import InputError


@pytest.fixture
def gpus(monkeypatch):
    """Pretend torch sees ``n`` CUDA GPUs (0: none) without needing one."""

    def see(n: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)

    return see


def test_every_torch_caller_uses_the_one_rule():
    from seqalignatac.embed import runner
    from seqalignatac.models.stage1 import trainer
    from seqalignatac.models.stage2 import api

    for module in (runner, trainer, api):
        assert module.resolve_device is device_module.resolve_device, module.__name__


def test_auto_follows_what_torch_sees(gpus):
    gpus(0)
    assert resolve_device("auto") == torch.device("cpu")
    gpus(2)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("CPU") == torch.device("cpu")  # spelled as the CLI accepts it


@pytest.mark.parametrize("asked", ["cuda", "cuda:0", "cuda:7"])
def test_cuda_without_a_gpu_is_one_line(gpus, asked):
    gpus(0)
    with pytest.raises(InputError, match=rf"^--device {asked} but no CUDA GPU is visible") as e:
        resolve_device(asked)
    assert "\n" not in str(e.value) and "use --device cpu or auto" in str(e.value)


def test_gpu_index_must_exist(gpus):
    gpus(2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    assert str(resolve_device("cuda")) == "cuda"  # what the embed store records
    with pytest.raises(InputError, match=r"--device cuda:7 but torch sees 2 CUDA GPU\(s\), cuda:0 to cuda:1"):
        resolve_device("cuda:7")


def test_not_a_device_names_the_option():
    with pytest.raises(InputError, match="invalid value for --device: 'gpu' is not a device"):
        resolve_device("gpu")
