"""Reference values for tests/reference.rs, computed with NumPy and SciPy.

Run `python3 plugins/psi-drift/tests/reference.py` (numpy and scipy installed) and paste its
output into tests/reference.rs. The samples come from a 64-bit LCG that the Rust test
reimplements bit for bit, so both sides see exactly the same numbers.
"""

import numpy as np
from scipy import stats
from scipy.special import kolmogorov
from scipy.spatial.distance import jensenshannon

MASK = (1 << 64) - 1


class Lcg:
    def __init__(self, seed):
        self.state = seed

    def uniform(self):
        self.state = (self.state * 6364136223846793005 + 1442695040888963407) & MASK
        return (self.state >> 11) * 2.0**-53


def irwin_hall(rng, n, shift):
    return np.array([sum(rng.uniform() for _ in range(4)) + shift for _ in range(n)])


def dice(rng, n, faces):
    return np.array([float(int(rng.uniform() * faces)) for _ in range(n)])


def psi(ref, cur):
    edges = np.quantile(ref, np.arange(11) / 10)
    edges[0], edges[-1] = -np.inf, np.inf
    edges = np.unique(edges)
    r = np.histogram(ref, edges)[0] / len(ref)
    c = np.histogram(cur, edges)[0] / len(cur)
    r, c = np.clip(r, 1e-4, None), np.clip(c, 1e-4, None)
    return float(np.sum((c - r) * np.log(c / r)))


def ks_asymptotic(d, n1, n2):
    ne = n1 * n2 / (n1 + n2)
    return float(kolmogorov((np.sqrt(ne) + 0.12 + 0.11 / np.sqrt(ne)) * d))


def report(name, ref, cur):
    d = stats.ks_2samp(ref, cur).statistic
    w = stats.wasserstein_distance(ref, cur) / max(np.std(ref), 0.001)
    print(f"// {name}: scipy exact/auto ks p = {stats.ks_2samp(ref, cur).pvalue!r}")
    print(
        f'("{name}", {psi(ref, cur)!r}, {float(d)!r}, {ks_asymptotic(d, len(ref), len(cur))!r}, {float(w)!r}),'
    )


rng = Lcg(42)
report("shifted", irwin_hall(rng, 2000, 0.0), irwin_hall(rng, 1500, 0.3))
rng = Lcg(7)
report("same", irwin_hall(rng, 1000, 0.0), irwin_hall(rng, 1000, 0.0))
rng = Lcg(3)
report("ties", dice(rng, 500, 6), dice(rng, 400, 7))
rng = Lcg(11)
report("small", irwin_hall(rng, 50, 0.0), irwin_hall(rng, 60, 0.5))

# Categorical: counts over the union {a, b, c, d}.
ref = np.array([50, 30, 20, 0]) / 100
cur = np.array([40, 30, 10, 20]) / 100
psi_cat = float(np.sum((np.clip(cur, 1e-4, None) - np.clip(ref, 1e-4, None))
                       * np.log(np.clip(cur, 1e-4, None) / np.clip(ref, 1e-4, None))))
print(f"// categorical: psi, jensen-shannon")
print(f"({psi_cat!r}, {float(jensenshannon(ref, cur))!r})")

# Chi-square test of homogeneity on the same counts (a category missing on one side), and on a
# large sample with a small shift; Pearson's statistic without continuity correction.
for name, table in [
    ("categorical", [[50, 30, 20, 0], [40, 30, 10, 20]]),
    ("large", [[5000, 3000, 2000], [4800, 3150, 2050]]),
    ("two categories", [[120, 80], [90, 110]]),
]:
    statistic, p, dof, _ = stats.chi2_contingency(table, correction=False)
    print(f"// chi-square {name}: statistic, dof, p")
    print(f"({float(statistic)!r}, {dof}, {float(p)!r})")
