"""The file ``spark-submit`` runs: ``spark-submit [options] src/speechlib/spark_job.py featurize ...``.

spark-submit needs a Python file as its main resource; this one runs
``speechlib spark COMMAND ...`` (:func:`speechlib.cli.main`): ``featurize``,
``predict`` or ``train``, with the same flags. The cluster commands are in the
docstrings of :mod:`speechlib.spark` and :mod:`speechlib.spark_train`;
``python -m speechlib.spark`` does the same without spark-submit.
"""

import sys

from speechlib import cli

if __name__ == "__main__":
    sys.exit(cli.main(["spark", *sys.argv[1:]]))
