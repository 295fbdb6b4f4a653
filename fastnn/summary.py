"""Text summaries for people: a network's layers and parameter counts (as Keras' ``summary``),
and held-out metrics as `fastnn train`, `fastnn evaluate` and `fastnn info` print them."""
__all__ = ["network_summary", "metrics_lines"]

# The name each metric is printed under, in order.
METRIC_NAMES = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy",
                "f1_macro": "F1 (macro)", "rmse": "RMSE", "mae": "MAE", "r2": "R^2"}


def network_summary(net):
    """A table of ``net``'s layers: each one's output width and parameter count, and the totals.

    Parameters
    ----------
    net : fastnn.MLP

    Returns
    -------
    str
        Lines without a final newline.
    """
    counts = {}
    for name, values in net.named_parameters().items():
        layer = int(name.split(".")[0])
        counts[layer] = counts.get(layer, 0) + values.size
    rows, width = [], net.sizes[0]
    for k, layer in enumerate(net.layers):
        width = layer.units if layer.kind == "dense" else width
        rows.append((str(k), repr(layer), str(width), f"{counts.get(k, 0):,}"))
    header = ("#", "layer", "output", "parameters")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]

    def line(row):
        return (f"  {row[0]:>{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}  "
                f"{row[3]:>{widths[3]}}").rstrip()

    loss = net.loss_name + "".join(f", {k} {v:g}" for k, v in net.loss_options.items())
    return "\n".join([
        f"network: {net.sizes[0]} inputs, {len(net.layers)} layers, {net.dtype.name}, "
        f"loss {loss}, l2 {net.l2:g}",
        line(header), *map(line, rows),
        f"  total: {net.n_params:,} parameters"
        + (f", {net.buffers.size:,} buffer values" if net.buffers.size else "")])


def metrics_lines(metrics, classes=None):
    """The lines that show one set of held-out metrics.

    Parameters
    ----------
    metrics : dict
        As `fastnn.metrics.classification_metrics` or `regression_metrics` return them.
    classes : list, optional
        The class names, to label the confusion matrix's rows (true class) and columns
        (predicted class).

    Returns
    -------
    list of str
    """
    shown = [name for name in METRIC_NAMES if name in metrics]
    width = max(len(METRIC_NAMES[name]) for name in shown)
    lines = [f"  {METRIC_NAMES[name]:<{width}}  {_number(metrics[name])}" for name in shown]
    if "confusion_matrix" in metrics:
        matrix = metrics["confusion_matrix"]
        labels = [str(c) for c in (classes if classes is not None else range(len(matrix)))]
        first = max(len(label) for label in labels)
        cell = max(max(len(label) for label in labels),
                   max(len(str(n)) for row in matrix for n in row))
        lines.append("  confusion matrix (rows: true class, columns: predicted class):")
        lines.append(f"    {'':<{first}}  " + "  ".join(f"{label:>{cell}}" for label in labels))
        lines.extend(f"    {label:<{first}}  " + "  ".join(f"{n:>{cell}}" for n in row)
                     for label, row in zip(labels, matrix))
    return lines


def _number(value):
    """A metric with four decimals, or in scientific notation where those would hide it."""
    return f"{value:.4f}" if value == 0 or 1e-3 <= abs(value) < 1e6 else f"{value:.4e}"
