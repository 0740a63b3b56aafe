import numpy as np

from aquapose.segmentation.draw import BOX_COLOR, GT_COLOR, PRED_COLOR, draw_boxes, overlay_masks


def test_overlay_draws_both_outlines_without_touching_input():
    image = np.full((40, 40, 3), 128, np.uint8)
    gt = np.zeros((40, 40), bool)
    gt[5:15, 5:15] = True
    pred = np.zeros((40, 40), bool)
    pred[20:30, 20:30] = True
    out = overlay_masks(image, [gt], [pred])
    assert (image == 128).all()
    assert (out[5, 5] == GT_COLOR).all() and (out[20, 20] == PRED_COLOR).all()
    assert (out[25, 25] != 128).any()  # prediction lightly filled
    assert (out[35, 35] == 128).all()


def test_draw_boxes_uses_exclusive_edges_and_copies():
    image = np.zeros((20, 20, 3), np.uint8)
    out = draw_boxes(image, [np.array([2.0, 3.0, 10.0, 12.0])], thickness=1)
    assert (image == 0).all()
    assert (out[3, 2] == BOX_COLOR).all() and (out[11, 9] == BOX_COLOR).all()
    assert (out[12, 10] == 0).all() and (out[7, 6] == 0).all()
