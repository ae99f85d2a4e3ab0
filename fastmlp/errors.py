"""The exceptions and warnings fastmlp raises."""


class NotFittedError(ValueError, AttributeError):
    """A model was used before ``fit`` (or ``partial_fit``, or ``load``)."""


class ConvergenceWarning(UserWarning):
    """Training ran out of epochs before the loss stopped improving."""


class DivergenceError(FloatingPointError, ValueError):
    """Training produced a non-finite loss or weight and was stopped.

    The parameters and optimiser state are put back as they were before the
    epoch that failed (for ``partial_fit``: before the call), so the model
    holds no NaN. A ``ValueError`` too, like scikit-learn's error for the
    same case.
    """
