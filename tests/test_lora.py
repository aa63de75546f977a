import pytest
import torch
import torch.nn as nn

from generator.science.lora import LoRALinear, inject_lora
from generator.science.attention import TinySelfAttention


def _layer(d_in=16, d_out=12, r=4, **kw):
    torch.manual_seed(0)
    return LoRALinear(nn.Linear(d_in, d_out, bias=False), r=r, **kw)


@pytest.mark.parametrize("a_init", ["gaussian", "kaiming"])
def test_equals_base_at_init_exactly(a_init):
    layer = _layer(a_init=a_init)
    x = torch.randn(7, 16)
    assert torch.equal(layer(x), layer.base(x))
    assert torch.count_nonzero(layer.B) == 0
    assert torch.count_nonzero(layer.A) == layer.A.numel()


def test_gaussian_init_scale_and_kaiming_bound():
    torch.manual_seed(0)
    g = LoRALinear(nn.Linear(256, 256, bias=False), r=32, a_std=0.01)
    assert abs(float(g.A.detach().std()) - 0.01) < 0.0005
    k = LoRALinear(nn.Linear(256, 256, bias=False), r=32, a_init="kaiming")
    # kaiming_uniform with a=sqrt(5) is U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    assert float(k.A.detach().abs().max()) <= 1 / 16 + 1e-7
    assert float(k.A.detach().std()) > 0.03


def test_trainable_parameters_are_exactly_A_and_B():
    layer = _layer(d_in=16, d_out=12, r=3)
    trainable = {name for name, p in layer.named_parameters() if p.requires_grad}
    assert trainable == {"A", "B"}
    assert sum(p.numel() for p in layer.parameters() if p.requires_grad) == 3 * (16 + 12)
    assert layer.A.shape == (3, 16) and layer.B.shape == (12, 3)
    assert layer.scale == 8.0 / 3


def test_delta_rank_and_merge_after_training():
    layer = _layer(d_in=32, d_out=32, r=2)
    opt = torch.optim.Adam([layer.A, layer.B], lr=0.05)
    x = torch.randn(20, 32)
    target = torch.randn(20, 32)
    for _ in range(30):
        loss = ((layer(x) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    delta = layer.delta_weight().detach()
    assert delta.shape == (32, 32)
    assert torch.linalg.matrix_rank(delta).item() <= 2
    assert delta.abs().max() > 0
    merged = layer.merge()
    assert isinstance(merged, nn.Linear) and not isinstance(merged, LoRALinear)
    with torch.no_grad():
        assert torch.allclose(merged(x), layer(x), atol=1e-6, rtol=0)
        assert torch.equal(merged.weight, layer.base.weight + delta)


def test_merge_keeps_bias():
    torch.manual_seed(1)
    layer = LoRALinear(nn.Linear(8, 8, bias=True), r=2)
    with torch.no_grad():
        layer.B.normal_()
    x = torch.randn(3, 8)
    with torch.no_grad():
        assert torch.allclose(layer.merge()(x), layer(x), atol=1e-6)


def test_rank_out_of_range_is_rejected():
    with pytest.raises(ValueError):
        LoRALinear(nn.Linear(4, 4), r=5)
    with pytest.raises(ValueError):
        LoRALinear(nn.Linear(4, 4), r=0)


@pytest.mark.parametrize("site", ["q", "k", "v"])
def test_inject_freezes_everything_but_the_branch(site):
    torch.manual_seed(0)
    attn = TinySelfAttention(16)
    lora = inject_lora(attn, site=site, r=2)
    assert getattr(attn, f"{site}_proj") is lora
    trainable = sorted(n for n, p in attn.named_parameters() if p.requires_grad)
    assert trainable == [f"{site}_proj.A", f"{site}_proj.B"]
