"""The file ``spark-submit`` runs: ``spark-submit [options] src/speechlib/spark_job.py featurize ...``.

spark-submit needs a Python file as its main resource; this one only calls
:func:`speechlib.spark.main` (see that module's docstring for the cluster
commands). ``python -m speechlib.spark`` does the same without spark-submit.
"""

import sys

from speechlib.spark import main

if __name__ == "__main__":
    sys.exit(main())
