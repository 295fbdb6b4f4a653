"""An ensemble of networks whose prediction is the mean of its members' (see `Ensemble`)."""
from fastnn.network import MLP


class Ensemble:
    """Networks that predict together: the output is the mean of the members' outputs.

    Members trained apart (with `fastnn.fit_many`, say) from different seeds or settings
    average out part of each one's error. For classifiers with a softmax (or sigmoid) output the
    mean is a mean of probabilities, still a probability for each row.

    Parameters
    ----------
    members : sequence of fastnn.MLP
        At least one network; all of the same input width, output width and output
        activation (a mean of probabilities and raw scores would mean nothing).

    Attributes
    ----------
    members : tuple of fastnn.MLP

    Examples
    --------
    >>> import numpy as np, fastnn
    >>> nets = [fastnn.MLP([4, 8, 3], output_activation="softmax", loss="cross_entropy",
    ...                    seed=s) for s in range(3)]
    >>> fastnn.Ensemble(nets).forward(np.zeros((2, 4))).shape
    (2, 3)
    """

    def __init__(self, members):
        if isinstance(members, MLP):
            members = [members]
        members = tuple(members)
        if not members:
            raise ValueError("an Ensemble needs at least one member")
        for i, net in enumerate(members):
            if not isinstance(net, MLP):
                raise TypeError(f"members[{i}] is a {type(net).__name__}, not a fastnn.MLP")
        first = members[0]
        for i, net in enumerate(members[1:], 1):
            if net.sizes[0] != first.sizes[0]:
                raise ValueError(f"members[{i}] takes {net.sizes[0]} inputs, members[0] "
                                 f"{first.sizes[0]}: the members must take the same inputs")
            if net.sizes[-1] != first.sizes[-1]:
                raise ValueError(f"members[{i}] has {net.sizes[-1]} outputs, members[0] "
                                 f"{first.sizes[-1]}: the members must have the same outputs")
            if net.output_activation != first.output_activation:
                raise ValueError(f"members[{i}] has output activation {net.output_activation!r}, "
                                 f"members[0] {first.output_activation!r}: their outputs cannot "
                                 f"be averaged")
        self.members = members

    @property
    def n_in(self):
        """The input width of the members (an int)."""
        return self.members[0].sizes[0]

    @property
    def n_out(self):
        """The output width of the members (an int)."""
        return self.members[0].sizes[-1]

    def forward(self, X):
        """The mean of the members' outputs for the rows of X, in evaluation mode.

        Parameters
        ----------
        X : array-like of shape (N, n_in)

        Returns
        -------
        ndarray of shape (N, n_out)
            In the widest dtype of the members (float64 if any is).
        """
        total = self.members[0].forward(X)
        for net in self.members[1:]:
            total = total + net.forward(X)
        return total / len(self.members)

    predict = forward

    def __len__(self):
        return len(self.members)

    def __repr__(self):
        return f"Ensemble({len(self.members)} members, {self.n_in} -> {self.n_out})"
