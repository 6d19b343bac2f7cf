"""One colour per reply class, the same in every table and plot.

Okabe and Ito's colour-blind-safe palette: 2xx bluish green, 3xx sky blue,
4xx orange, 5xx vermillion, no reply grey.  Readable on a projector.
"""

CLASS_COLOURS = {
    "2xx": "#009E73",
    "3xx": "#56B4E9",
    "4xx": "#E69F00",
    "5xx": "#D55E00",
    "none": "#999999",
}
CLIENT_COLOUR = "#0072B2"  # blue: what the client sent
INJECTED_COLOUR = "#CC79A7"  # reddish purple: a reply a fault rule made
