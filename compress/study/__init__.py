"""``compress study CONFIG``: a grid of methods × data settings × seeds, as the seed study runs it.

A study file looks like::

    output: runs/study/label-noise
    axis: label_noise              # or: imbalance (then `imbalance:` gives the profile)
    values: [0.0, 0.2, 0.4, 0.6]   # σ, or γ (dirichlet) / ρ (exp, step)
    methods: [none, kd, fitnet, dml, at]
    seeds: [0, 1, 2]
    data: {name: fashion-mnist, train_subset: 5000, batch_size: 64}
    teacher: {model: resnet20, epochs: 4}                  # `compress train` settings
    student: {student: resnet8, epochs: 8}                 # `compress distill` settings
    method_args: {fitnet: {feat_weight: 100}}              # per method (optional)

Every cell (setting, method, seed) is one `compress distill` run in
``OUTPUT/cells/<setting>/<method>/seed<N>``; one teacher per setting, trained on the same
corrupted data, in ``OUTPUT/teachers/<setting>``. The corruption is fixed for the whole study
(``data.noise_seed``, default 0), so teacher and students of a setting see exactly the same
labels and only the seed of training changes between seeds. Finished cells are skipped, an
interrupted one resumes; ``study.md|csv|json`` and ``study.png`` summarise mean ± std.

The cells run where ``executor:`` (``--executor``) says: ``local`` (one after another here) or
``ray[:ADDRESS]`` (Ray tasks with ``resources: {cpus, gpus}`` each, a cell after its teacher),
see `compress.study.executors`. Parts: `config` (the grid), `cells` (one run, claimed, wherever
it runs), `executors`, `run` (the driver), `table` (the outputs).
"""

from compress.study.cells import cell_digest, run_cell, run_teacher
from compress.study.config import Cell, Resources, StudyConfig, plan_study
from compress.study.run import run_study
from compress.study.table import aggregate, markdown_table, train_table, write_study

__all__ = [
    "Cell", "Resources", "StudyConfig", "aggregate", "cell_digest", "markdown_table",
    "plan_study", "run_cell", "run_study", "run_teacher", "train_table", "write_study",
]  # fmt: skip
