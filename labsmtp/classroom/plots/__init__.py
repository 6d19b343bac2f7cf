"""Pictures of what happened: outcomes, reply codes, one session, the state table.

Every function returns a matplotlib ``Figure`` built without pyplot, so it
works under the Agg backend (tests, CI, the command line) and inside a
notebook without leaking open figures.  Colours come from ``style.py``: the
same colour for the same reply class in every picture (2xx, 3xx, 4xx, 5xx,
no reply), Okabe-Ito, colour-blind safe.  Sized for a projector (``figure``):
tests/test_plots.py checks sizes, overlaps and clipping of every plot;
tests/test_browser.py measures the text on screen.

- ``outcomes``: many dialogues (trials): outcome_bars, codes_by_stage,
  latency_histogram, retry_timeline.
- ``dialogue``: one session and its rules: ladder, state_diagram, legal_replies.
- ``servers``: several servers: plot_comparison, mx_attempts.
"""

from .dialogue import ladder, legal_replies, state_diagram
from .figure import (
    COLUMN_INCHES,
    COLUMN_PX,
    PX_PER_INCH,
    SMALLEST_PT,
    LabFigure,
    figure_svg,
    save_figure,
)
from .outcomes import (
    OUTCOME_COLOURS,
    code_styles,
    codes_by_stage,
    latency_histogram,
    outcome_bars,
    retry_timeline,
)
from .servers import mx_attempts, plot_comparison

__all__ = [
    "COLUMN_INCHES",
    "COLUMN_PX",
    "OUTCOME_COLOURS",
    "PX_PER_INCH",
    "SMALLEST_PT",
    "LabFigure",
    "code_styles",
    "codes_by_stage",
    "figure_svg",
    "ladder",
    "latency_histogram",
    "legal_replies",
    "mx_attempts",
    "outcome_bars",
    "plot_comparison",
    "retry_timeline",
    "save_figure",
    "state_diagram",
]
