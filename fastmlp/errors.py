"""The exceptions and warnings fastmlp raises."""


class NotFittedError(ValueError, AttributeError):
    """A model was used before ``fit`` (or ``partial_fit``, or ``load``)."""


class ConvergenceWarning(UserWarning):
    """Training ran out of epochs before the loss stopped improving."""


class DivergenceError(FloatingPointError):
    """Training produced a non-finite loss or weight and was stopped.

    The model keeps the last finite weights, those from before the batch that
    failed.
    """
