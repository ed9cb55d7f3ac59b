"""Result tables: our numbers beside the paper's, in the paper's layout (method rows x metric columns).

Every paper's ``evaluate`` prints its tables through ``Table``::

    t = Table("Table III: CelebA", ["PSNR", "SSIM"], formats={"PSNR": ".2f", "SSIM": ".3f"})
    t.add("UMSN", ours=[25.12, 0.881], paper=[25.90, 0.906])
    t.add("Nah et al. [7]", paper={"PSNR": 22.43, "SSIM": 0.832})   # a paper-only row
    print(t)                      # aligned text, each metric as an "ours | paper" pair of columns
    t.to_markdown(); t.to_csv(path); Table.from_csv(path)

A value is a number, a ``(mean, std)`` pair (printed "0.912 ± 0.010"), a string, or missing (``None``
or NaN, printed "–"). ``ours`` / ``paper`` are sequences aligned with ``columns`` or dicts keyed by
column name (absent keys are missing).
"""

import csv
import math
import os

MISSING = "–"
_OURS, _PAPER = "ours", "paper"


def _is_missing(v):
    return v is None or (isinstance(v, float) and math.isnan(v))


def _fmt_number(v, spec):
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int) and not spec:
        return str(v)
    v = float(v)
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if not spec:
        spec = ".2f" if abs(v) >= 1 else ".4f"
    return format(v, spec)


def format_value(v, spec=None):
    """Display string of one cell value (see module docstring); ``spec`` is a format spec like ".2f"."""
    if _is_missing(v):
        return MISSING
    if isinstance(v, str):
        return v
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"a tuple value must be (mean, std), got {v!r}")
        return f"{_fmt_number(v[0], spec)} ± {_fmt_number(v[1], spec)}"
    return _fmt_number(v, spec)


def _csv_value(v):
    if _is_missing(v):
        return ""
    if isinstance(v, (tuple, list)):
        return f"{_csv_value(v[0])} ± {_csv_value(v[1])}"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def _parse_csv_value(s):
    s = s.strip()
    if s == "":
        return None
    if " ± " in s:
        m, sd = s.split(" ± ", 1)
        return (_parse_csv_value(m), _parse_csv_value(sd))
    try:
        return int(s)
    except ValueError:
        pass
    try:
        return float(s)
    except ValueError:
        return s


class Table:
    """A results table of methods (rows) x metrics (columns), ours beside the paper's.

    Args:
      title: printed above the table (e.g. "Table I: per-class PSNR/SSIM, CelebA").
      columns: metric names, in the paper's order.
      rows: optional iterable of ``(name, ours, paper)`` tuples (see ``add``).
      formats: a format spec for every column (".3f") or a dict column -> spec; default ".2f" for
        |v| >= 1 and ".4f" below.
      notes: lines printed under the table (what differs from the paper, data used, ...).
    """

    def __init__(self, title, columns, rows=(), formats=None, notes=()):
        self.title = str(title)
        self.columns = [str(c) for c in columns]
        if len(set(self.columns)) != len(self.columns):
            raise ValueError(f"duplicate column names in {self.columns}")
        if isinstance(formats, str) or formats is None:
            self.formats = {c: formats for c in self.columns}
        else:
            unknown = set(formats) - set(self.columns)
            if unknown:
                raise ValueError(f"formats name unknown columns {sorted(unknown)}")
            self.formats = {c: formats.get(c) for c in self.columns}
        self.notes = list(notes)
        self.rows = []  # list of (name, {col: ours}, {col: paper})
        for row in rows:
            self.add(*row)

    def _values(self, values, what, name):
        if values is None:
            return {}
        if isinstance(values, dict):
            unknown = set(values) - set(self.columns)
            if unknown:
                raise ValueError(f"row {name!r}: {what} names unknown columns {sorted(unknown)}; "
                                 f"columns are {self.columns}")
            return dict(values)
        values = list(values)
        if len(values) != len(self.columns):
            raise ValueError(f"row {name!r}: {what} has {len(values)} values for "
                             f"{len(self.columns)} columns {self.columns}")
        return dict(zip(self.columns, values))

    def add(self, name, ours=None, paper=None):
        """Appends a row; ``ours`` / ``paper``: sequence aligned with columns, dict, or None. Returns self."""
        self.rows.append((str(name), self._values(ours, _OURS, name), self._values(paper, _PAPER, name)))
        return self

    def value(self, name, column, which=_OURS):
        """The stored value of one cell (``which`` = "ours" or "paper"); None when missing."""
        for n, ours, paper in self.rows:
            if n == name:
                return (ours if which == _OURS else paper).get(column)
        raise KeyError(name)

    # ----------------------------------------------------------------- rendering
    def _cells(self):
        """Rows of display strings: [name, c1 ours, c1 paper, c2 ours, ...]."""
        out = []
        for name, ours, paper in self.rows:
            cells = [name]
            for c in self.columns:
                cells += [format_value(ours.get(c), self.formats[c]),
                          format_value(paper.get(c), self.formats[c])]
            out.append(cells)
        return out

    def to_text(self):
        """Aligned plain text: a two-line header (metric, then "ours  paper") over each column pair."""
        cells = self._cells()
        name_w = max([len("Method")] + [len(r[0]) for r in cells])
        pair_ws = []
        for j, c in enumerate(self.columns):
            wo = max([len(_OURS)] + [len(r[1 + 2 * j]) for r in cells])
            wp = max([len(_PAPER)] + [len(r[2 + 2 * j]) for r in cells])
            extra = max(0, len(c) - (wo + 2 + wp))
            wo += extra  # widen "ours" so the pair is at least as wide as the metric name
            pair_ws.append((wo, wp))
        head1 = " " * name_w + " | " + " | ".join(c.center(wo + 2 + wp) for c, (wo, wp) in
                                                   zip(self.columns, pair_ws))
        head2 = "Method".ljust(name_w) + " | " + " | ".join(
            f"{_OURS.rjust(wo)}  {_PAPER.rjust(wp)}" for wo, wp in pair_ws)
        rule = "-" * name_w + "-+-" + "-+-".join("-" * (wo + 2 + wp) for wo, wp in pair_ws)
        lines = [self.title, head1.rstrip(), head2, rule]
        for r in cells:
            lines.append(r[0].ljust(name_w) + " | " + " | ".join(
                f"{r[1 + 2 * j].rjust(wo)}  {r[2 + 2 * j].rjust(wp)}" for j, (wo, wp) in enumerate(pair_ws)))
        lines += self.notes
        return "\n".join(lines)

    def __str__(self):
        return self.to_text()

    def to_markdown(self):
        """A Markdown table (bold title line, "Metric (ours)" / "Metric (paper)" columns, notes below)."""
        header = ["Method"] + [f"{c} ({w})" for c in self.columns for w in (_OURS, _PAPER)]
        esc = [h.replace("|", "\\|") for h in header]
        lines = [f"**{self.title}**", "", "| " + " | ".join(esc) + " |",
                 "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
        for r in self._cells():
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |")
        if self.notes:
            lines += [""] + self.notes
        return "\n".join(lines) + "\n"

    # ----------------------------------------------------------------- CSV
    def to_csv(self, path):
        """Writes the raw values (full precision, empty = missing) atomically; makes parent folders.

        Columns: ``method``, then ``<metric> (ours)``, ``<metric> (paper)`` for every metric.
        """
        path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = f"{path}.tmp.{os.getpid()}"
        try:
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(["method"] + [f"{c} ({k})" for c in self.columns for k in (_OURS, _PAPER)])
                for name, ours, paper in self.rows:
                    w.writerow([name] + [_csv_value(d.get(c)) for c in self.columns for d in (ours, paper)])
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return path

    @classmethod
    def from_csv(cls, path, title=None, formats=None):
        """Reads a table written by ``to_csv`` (title defaults to the file name without extension)."""
        with open(path, newline="", encoding="utf-8") as f:
            data = list(csv.reader(f))
        if not data or data[0][:1] != ["method"] or (len(data[0]) - 1) % 2:
            raise ValueError(f"{path}: not a table written by Table.to_csv (header {data[:1]}).")
        header = data[0][1:]
        columns = []
        for i in range(0, len(header), 2):
            o, p = header[i], header[i + 1]
            suffix_o, suffix_p = f" ({_OURS})", f" ({_PAPER})"
            if not (o.endswith(suffix_o) and p.endswith(suffix_p) and o[:-len(suffix_o)] == p[:-len(suffix_p)]):
                raise ValueError(f"{path}: columns {o!r}, {p!r} are not an ours/paper pair.")
            columns.append(o[:-len(suffix_o)])
        title = title if title is not None else os.path.splitext(os.path.basename(path))[0]
        t = cls(title, columns, formats=formats)
        for row in data[1:]:
            if len(row) != len(data[0]):
                raise ValueError(f"{path}: row {row[:1]} has {len(row)} fields, header has {len(data[0])}.")
            vals = [_parse_csv_value(v) for v in row[1:]]
            t.add(row[0], ours=vals[0::2], paper=vals[1::2])
        return t


def progress(iterable, total=None, desc="", every_seconds=10.0, stream=None):
    """Yields the items of `iterable`, reporting `desc: i/total (P%), elapsed, ETA` on stderr:
    a bar redrawn in place on a terminal, else a line at most every `every_seconds` (logs), and
    a last line at the end. Used on the long loops of the paper evaluations."""
    import sys  # pylint: disable=import-outside-toplevel
    import time  # pylint: disable=import-outside-toplevel
    stream = sys.stderr if stream is None else stream
    if total is None:
        try:
            total = len(iterable)
        except TypeError:
            total = None
    tty = hasattr(stream, "isatty") and stream.isatty()
    start = last = time.time()
    i = 0

    def line(done):
        elapsed = time.time() - start
        if total:
            eta = elapsed / max(done, 1) * (total - done)
            width = 24
            fill = int(width * done / total)
            return (f"{desc}: [{'#' * fill}{'.' * (width - fill)}] {done}/{total} "
                    f"({100.0 * done / total:.0f}%), {elapsed:.0f} s, ETA {eta:.0f} s")
        return f"{desc}: {done} done, {elapsed:.0f} s"

    for item in iterable:
        yield item
        i += 1
        now = time.time()
        if tty:
            stream.write("\r" + line(i))
            stream.flush()
        elif now - last >= every_seconds:
            stream.write(line(i) + "\n")
            last = now
    stream.write(("\r" if tty else "") + line(i) + "\n")
    stream.flush()
