"""Start-up shared by the board entry points (main.py, code.py): board definition,
baked-in key and detector, each failure reported as one protocol error line."""

import airmark_proto as proto


def load(emit):
    """(board, key, detector), or None after emitting an error line."""
    import airmark_board
    import airmark_key

    try:
        board = airmark_board.load()
    except Exception as exc:
        emit(proto.error("board definition: " + proto.exc_text(exc)))
        return None
    try:
        from airmark_keydata import KEY

        airmark_key.validate(KEY)
    except Exception as exc:
        emit(proto.error("key (airmark_keydata): " + proto.exc_text(exc)))
        return None
    try:
        import airmark_detector

        detector = airmark_detector.Detector(KEY)
    except Exception as exc:
        emit(proto.error("detector: " + proto.exc_text(exc)))
        return None
    return board, KEY, detector
