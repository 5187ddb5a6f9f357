"""sklearn baselines on the 57-feature handcrafted table (`genre_core.features.handcrafted`).

Each is a Pipeline that standardises first: the table mixes Hz (centroid ~ 2000), BPM
(~ 120) and variances near 0; all but the forest are sensitive to scale, and the forest
keeps the step so every baseline has the same two-step shape.
Every one has `predict_proba`, so the stored predictions have probabilities for any model.
"""

from __future__ import annotations

from sklearn.base import ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from genre_core.models.base import ModelSpec


def _scaled(estimator: ClassifierMixin) -> Pipeline:
    return Pipeline([("scale", StandardScaler()), ("clf", estimator)])


def build_logreg(seed: int = 0) -> Pipeline:
    return _scaled(LogisticRegression(C=1.0, max_iter=2000, random_state=seed))


def build_sgd(seed: int = 0) -> Pipeline:
    # log-loss makes it a logistic regression fitted by SGD, which gives predict_proba.
    return _scaled(
        SGDClassifier(loss="log_loss", alpha=1e-4, max_iter=2000, tol=1e-4, random_state=seed)
    )


def build_rf(seed: int = 0) -> Pipeline:
    return _scaled(RandomForestClassifier(n_estimators=300, min_samples_leaf=1, random_state=seed))


def build_svm(seed: int = 0) -> Pipeline:
    # Platt scaling on out-of-fold decision values, then one SVC refitted on all rows: what
    # SVC(probability=True) did before sklearn 1.9 deprecated it, and predict() now agrees
    # with predict_proba(). 3 folds, not 5, so small corpora (5 tracks a genre) still fit.
    # C=10 suits the RBF kernel on 57 standardised features.
    svc = SVC(kernel="rbf", C=10.0, gamma="scale", random_state=seed)
    return _scaled(CalibratedClassifierCV(svc, method="sigmoid", cv=3, ensemble=False))


def build_mlp(seed: int = 0) -> Pipeline:
    """The published handcrafted-features pipeline: standardised 57-d table into a
    512-256-128-64 ReLU MLP trained with Adam (the Kaggle GTZAN notebooks' dense net)."""
    return _scaled(
        MLPClassifier(
            hidden_layer_sizes=(512, 256, 128, 64),
            alpha=1e-3,  # L2, standing in for the published nets' dropout
            learning_rate_init=1e-3,
            max_iter=500,
            early_stopping=True,  # holds out 10% of the training rows, as they used a val split
            n_iter_no_change=20,
            random_state=seed,
        )
    )


SPECS: dict[str, ModelSpec] = {
    "logreg": ModelSpec("logreg", "baseline", "handcrafted", build_logreg, "logistic regression"),
    "sgd": ModelSpec("sgd", "baseline", "handcrafted", build_sgd, "linear model, log-loss SGD"),
    "rf": ModelSpec("rf", "baseline", "handcrafted", build_rf, "random forest, 300 trees"),
    "svm": ModelSpec("svm", "baseline", "handcrafted", build_svm, "RBF SVM, Platt-calibrated"),
    "mlp": ModelSpec(
        "mlp", "baseline", "handcrafted", build_mlp,
        "MLP on the 57 handcrafted features (replica of the published GTZAN pipeline)",
    ),
    "rf_wavelet": ModelSpec("rf_wavelet", "baseline", "handcrafted+wavelet", build_rf,
                            "random forest on the 57 handcrafted + 21 wavelet sub-band features"),
    "mlp_wavelet": ModelSpec("mlp_wavelet", "baseline", "handcrafted+wavelet", build_mlp,
                             "MLP on the 57 handcrafted + 21 wavelet sub-band features"),
}
