import pytest
import torch
from reference import DERIVATIVES
from snetx.snn import algorithm, surrogate


@pytest.mark.parametrize("name", list(DERIVATIVES))
@pytest.mark.parametrize("alpha", [0.5, 2.0, 4.0])
def test_forward_is_heaviside_and_backward_is_table(name, alpha):
    fn = surrogate.get(name)
    z = torch.linspace(-2, 2, 401, dtype=torch.float64).requires_grad_()
    s = fn.apply(z, alpha)
    assert torch.equal(s, (z >= 0).double())
    assert fn.apply(torch.zeros(1, dtype=torch.float64), alpha).item() == 1.0  # z == 0 fires
    g = torch.randn(401, dtype=torch.float64)
    s.backward(g)
    torch.testing.assert_close(z.grad, g * DERIVATIVES[name](z.detach(), alpha), rtol=1e-12, atol=0)


def test_names_aliases_and_registry():
    assert surrogate.REGISTERED_SG_FUNCLIST == (
        "arctan",
        "sigmoid",
        "rectangular",
        "triangle",
        "fast_sigmoid",
        "ste",
    )
    assert surrogate.get("LeakyReLU") is surrogate.ste
    assert surrogate.get("arctan") is surrogate.arc_tan is algorithm.arc_tan
    assert surrogate.name_of(surrogate.triangle) == "triangle"


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError, match="'arctan'.*'sigmoid'"):
        surrogate.get("tanh")


def test_not_a_function_is_type_error():
    with pytest.raises(TypeError, match="sg must be"):
        surrogate.get(3.0)


def test_user_surrogate_on_base_class_is_fused_capable():
    class Gauss(surrogate.SurrogateFunction):
        @staticmethod
        def derivative(z, alpha):
            return alpha * torch.exp(-((alpha * z) ** 2))

    assert surrogate.has_derivative(Gauss)
    z = torch.tensor([-0.3, 0.1], dtype=torch.float64, requires_grad=True)
    Gauss.apply(z, 2.0).sum().backward()
    torch.testing.assert_close(z.grad, 2.0 * torch.exp(-((2.0 * z.detach()) ** 2)))
