"""``mocap board``: draw a calibration board, printable at true scale."""
from __future__ import annotations

HELP = "draw a calibration board (BOARD.yaml) as a true-scale PDF or a PNG"


def add_arguments(parser) -> None:
    parser.add_argument("board", metavar="BOARD.yaml", help="board spec (see configs/boards/)")
    parser.add_argument("--output", "-o", required=True, metavar="board.pdf|png",
                        help="PDF: one page the size of the board, print at 100 %% (actual size); PNG: at --dpi")
    parser.add_argument("--dpi", type=float, default=300.0, help="resolution of the drawing (default 300)")
    parser.add_argument("--margin-mm", type=float, default=10.0, help="white margin around the board (default 10 mm)")


def run(args) -> int:
    from calibration.board import load_board, save_board

    spec = load_board(args.board)
    path = save_board(spec, args.output, dpi=args.dpi, margin_m=args.margin_mm / 1000.0)
    width, height = spec.size_m
    print(f"{path}: {spec.describe()}, board {width * 1000:g} x {height * 1000:g} mm "
          f"plus {args.margin_mm:g} mm margins; measure a printed square: it must be {spec.square_length * 1000:g} mm")
    return 0
