import sys, os
sys.argv = sys.argv[:6]
D = int(os.environ.get("PCA_D", "2")); K = int(os.environ.get("KNN_K", "3"))
import actsearch.search.predictor as P
class PCA(P.PCA):
    def __init__(self, n_components=None, random_state=None):
        super().__init__(n_components=D, random_state=random_state)
class KR(P.KNeighborsRegressor):
    def __init__(self, n_neighbors=5):
        super().__init__(n_neighbors=K if n_neighbors >= 3 else n_neighbors)
P.PCA = PCA; P.KNeighborsRegressor = KR
exec(open("/tmp/exp/canon.py").read())
