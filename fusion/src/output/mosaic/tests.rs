use super::*;
use std::f64::consts::{FRAC_PI_2, FRAC_PI_3, PI};

fn solid(w: u32, h: u32, rgb: [u8; 3]) -> RgbImage {
    RgbImage::from_pixel(w, h, Rgb(rgb))
}

fn layout(cell_width: u32, cell_height: u32, columns: usize) -> MosaicLayout {
    MosaicLayout { cell_width, cell_height, columns }
}

/// The centre pixel of cell `cell` (row-major) of a mosaic with `columns` columns.
fn cell_centre(img: &RgbImage, l: &MosaicLayout, columns: usize, cell: usize) -> [u8; 3] {
    let x = MOSAIC_SEPARATOR + (l.cell_width + MOSAIC_SEPARATOR) * (cell % columns) as u32 + l.cell_width / 2;
    let y = MOSAIC_SEPARATOR
        + (MOSAIC_LABEL_HEIGHT + l.cell_height + MOSAIC_SEPARATOR) * (cell / columns) as u32
        + MOSAIC_LABEL_HEIGHT
        + l.cell_height / 2;
    img.get_pixel(x, y).0
}

#[test]
fn no_tile_gives_no_mosaic() {
    assert!(compose_mosaic(&[], &MosaicLayout::default()).is_none());
    assert!(mosaic_order(&[]).is_empty());
}

#[test]
fn one_tile_is_one_labelled_cell() {
    let img = solid(64, 36, [200, 10, 10]);
    let l = layout(32, 18, 0);
    let m = compose_mosaic(&[MosaicTile { name: "camera", yaw: 0.0, image: &img }], &l).unwrap();
    assert_eq!(m.dimensions(), (32 + 2 * MOSAIC_SEPARATOR, MOSAIC_LABEL_HEIGHT + 18 + 2 * MOSAIC_SEPARATOR));
    assert_eq!(cell_centre(&m, &l, 1, 0), [200, 10, 10]);
    // The label strip carries text: some pixel in it is the text colour.
    let label = (0..32).flat_map(|x| (0..MOSAIC_LABEL_HEIGHT).map(move |y| (x, y)));
    assert!(label
        .into_iter()
        .any(|(x, y)| m.get_pixel(MOSAIC_SEPARATOR + x, MOSAIC_SEPARATOR + y).0 == TEXT_RGB));
    // The separator frames the cell.
    assert_eq!(m.get_pixel(0, 0).0, SEPARATOR_RGB);
}

#[test]
fn tiles_go_round_the_car_by_decreasing_yaw() {
    // Given out of order; yaws outside (−π, π] too.
    let colours: [[u8; 3]; 6] = [[1, 0, 0], [2, 0, 0], [3, 0, 0], [4, 0, 0], [5, 0, 0], [6, 0, 0]];
    let imgs: Vec<RgbImage> = colours.iter().map(|c| solid(16, 9, *c)).collect();
    let yaws = [0.0, -FRAC_PI_3, PI, 2.0 * FRAC_PI_3 + 2.0 * PI, FRAC_PI_3, -2.0 * FRAC_PI_3];
    let names = ["front", "front_right", "back", "back_left", "front_left", "back_right"];
    let tiles: Vec<MosaicTile<'_>> =
        (0..6).map(|i| MosaicTile { name: names[i], yaw: yaws[i], image: &imgs[i] }).collect();
    let order: Vec<&str> = mosaic_order(&tiles).iter().map(|&i| names[i]).collect();
    assert_eq!(order, ["back", "back_left", "front_left", "front", "front_right", "back_right"]);
    // Six tiles: two rows of three, in that order.
    let l = layout(16, 9, 0);
    let m = compose_mosaic(&tiles, &l).unwrap();
    assert_eq!(m.width(), MOSAIC_SEPARATOR + 3 * (16 + MOSAIC_SEPARATOR));
    assert_eq!(m.height(), MOSAIC_SEPARATOR + 2 * (MOSAIC_LABEL_HEIGHT + 9 + MOSAIC_SEPARATOR));
    let placed: Vec<u8> = (0..6).map(|cell| cell_centre(&m, &l, 3, cell)[0]).collect();
    assert_eq!(placed, [3, 4, 5, 1, 2, 6]);
}

#[test]
fn ties_and_nan_yaws_are_ordered_deterministically() {
    let img = solid(4, 4, [9, 9, 9]);
    let t = |name, yaw| MosaicTile { name, yaw, image: &img };
    let tiles = [t("b", 0.0), t("nan", f64::NAN), t("a", 0.0), t("a", 0.0), t("left", FRAC_PI_2)];
    assert_eq!(mosaic_order(&tiles), [4, 2, 3, 0, 1]);
    let l = layout(8, 8, 0);
    assert_eq!(compose_mosaic(&tiles, &l), compose_mosaic(&tiles, &l), "not deterministic");
}

#[test]
fn odd_counts_and_explicit_columns_leave_the_last_cells_empty() {
    let img = solid(20, 10, [50, 60, 70]);
    let tiles: Vec<MosaicTile<'_>> =
        (0..5).map(|i| MosaicTile { name: "c", yaw: -f64::from(i), image: &img }).collect();
    // Five tiles, columns chosen: 3 + 2.
    let l = layout(10, 5, 0);
    let m = compose_mosaic(&tiles, &l).unwrap();
    assert_eq!(m.width(), MOSAIC_SEPARATOR + 3 * (10 + MOSAIC_SEPARATOR));
    assert_eq!(cell_centre(&m, &l, 3, 4), [50, 60, 70]);
    assert_eq!(cell_centre(&m, &l, 3, 5), SEPARATOR_RGB, "the sixth cell is empty");
    // Two columns asked: three rows; more columns than tiles: one row.
    let m = compose_mosaic(&tiles, &layout(10, 5, 2)).unwrap();
    assert_eq!(m.height(), MOSAIC_SEPARATOR + 3 * (MOSAIC_LABEL_HEIGHT + 5 + MOSAIC_SEPARATOR));
    let m = compose_mosaic(&tiles[..3], &layout(10, 5, 8)).unwrap();
    assert_eq!(m.width(), MOSAIC_SEPARATOR + 3 * (10 + MOSAIC_SEPARATOR));
    // Up to four tiles, columns chosen: one row.
    let m = compose_mosaic(&tiles[..4], &l).unwrap();
    assert_eq!(m.height(), MOSAIC_SEPARATOR + MOSAIC_LABEL_HEIGHT + 5 + MOSAIC_SEPARATOR);
}

#[test]
fn mismatched_empty_and_tiny_images_do_not_panic() {
    let wide = solid(1000, 10, [255, 0, 0]);
    let tall = solid(3, 700, [0, 255, 0]);
    let empty = RgbImage::new(0, 0);
    let dot = solid(1, 1, [0, 0, 255]);
    let line = RgbImage::new(5, 0);
    let imgs = [&wide, &tall, &empty, &dot, &line];
    let tiles: Vec<MosaicTile<'_>> = imgs
        .iter()
        .enumerate()
        .map(|(i, im)| MosaicTile {
            name: "?é\u{1F697} long name that does not fit",
            yaw: i as f64,
            image: im,
        })
        .collect();
    for l in [layout(7, 5, 0), layout(1, 1, 1), layout(0, 0, 0), layout(64, 36, 3)] {
        let m = compose_mosaic(&tiles, &l).unwrap();
        assert!(m.width() > 0 && m.height() > 0);
    }
    // A 1×1 image fills its whole cell (aspect 1 in a square cell), upscaled.
    let l = layout(6, 6, 0);
    let m = compose_mosaic(&[MosaicTile { name: "", yaw: 0.0, image: &dot }], &l).unwrap();
    assert_eq!(cell_centre(&m, &l, 1, 0), [0, 0, 255]);
}

#[test]
fn downscaling_averages_and_keeps_the_aspect() {
    // A 4×2 checkerboard of black and white columns averages to mid grey at half size.
    let mut img = RgbImage::new(4, 2);
    for (x, _, p) in img.enumerate_pixels_mut() {
        *p = Rgb(if x % 2 == 0 { [0; 3] } else { [255; 3] });
    }
    let l = layout(2, 2, 0);
    let m = compose_mosaic(&[MosaicTile { name: "", yaw: 0.0, image: &img }], &l).unwrap();
    let y_top = MOSAIC_SEPARATOR + MOSAIC_LABEL_HEIGHT;
    // 4×2 into 2×2: fitted to 2×1 (centred: the odd row left over goes below).
    assert_eq!(m.get_pixel(MOSAIC_SEPARATOR, y_top).0, [128; 3]);
    assert_eq!(m.get_pixel(MOSAIC_SEPARATOR + 1, y_top).0, [128; 3]);
    assert_eq!(m.get_pixel(MOSAIC_SEPARATOR, y_top + 1).0, EMPTY_RGB);
    assert_eq!(fitted((1600, 900), (320, 180)), (320, 180));
    assert_eq!(fitted((1242, 375), (320, 180)), (320, 96));
    assert_eq!(fitted((3, 700), (7, 5)), (1, 5));
}
