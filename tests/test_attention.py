import math

import torch
import torch.nn.functional as F

from generator.science.attention import TinySelfAttention


def test_matches_scaled_dot_product_attention():
    torch.manual_seed(0)
    attn = TinySelfAttention(64)
    x = torch.randn(10, 64)
    out = attn(x)
    ref = F.scaled_dot_product_attention(out.Q[None], out.K[None], out.V[None])[0]
    assert torch.allclose(out.out, ref, atol=1e-6)
    assert out.scores.shape == (10, 10) and out.weights.shape == (10, 10)
    assert torch.allclose(out.weights.sum(-1), torch.ones(10), atol=1e-6)
    assert torch.allclose(out.scores, out.Q @ out.K.T / math.sqrt(64), atol=1e-6)


def test_projections_have_no_bias_and_default_width():
    attn = TinySelfAttention()
    assert attn.d_model == 64
    for proj in (attn.q_proj, attn.k_proj, attn.v_proj):
        assert proj.bias is None and proj.weight.shape == (64, 64)


def test_batched_input():
    torch.manual_seed(0)
    attn = TinySelfAttention(8)
    x = torch.randn(3, 5, 8)
    out = attn(x)
    assert out.weights.shape == (3, 5, 5)
    single = attn(x[1])
    assert torch.allclose(out.out[1], single.out, atol=1e-6)
