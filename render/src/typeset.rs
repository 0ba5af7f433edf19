//! Text onto pixels in the embedded DejaVu Sans, laid out as the font's
//! metrics say: each glyph's origin one advance plus the pair's kerning
//! after the last, unrounded, its outline drawn where its side bearing puts
//! it, and every glyph of a line on one baseline.
//!
//! plotters' own bitmap text (its `ab_glyph` feature) truncates each
//! origin to a whole pixel, drops the left side bearing and places each
//! glyph by the top of its own pixel box, so letters sit unevenly ("tcp+
//! tl s") and small glyphs such as a period sit high. [`Typeset`] wraps a
//! pixel backend and sets text itself; everything else passes through.

use ab_glyph::{point, Font, FontRef, GlyphId, PxScale, ScaleFont};
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
};
use std::sync::OnceLock;

pub static FONT: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");

fn font() -> &'static FontRef<'static> {
    static PARSED: OnceLock<FontRef<'static>> = OnceLock::new();
    PARSED.get_or_init(|| {
        FontRef::try_from_slice(FONT).expect("the embedded DejaVu Sans is a valid TrueType font")
    })
}

/// One glyph of a laid-out line: its origin on the baseline, in pixels
/// from the line's left edge.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlacedGlyph {
    pub id: GlyphId,
    pub x: f32,
}

/// A line of text at a pixel size (the font's ascent to descent).
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub size: f32,
    pub glyphs: Vec<PlacedGlyph>,
    /// The pen's position after the last glyph.
    pub width: f32,
    /// From the top of the line to the baseline.
    pub ascent: f32,
}

impl Line {
    pub fn new(text: &str, size: f32) -> Line {
        let scaled = font().as_scaled(PxScale::from(size));
        let mut glyphs = Vec::with_capacity(text.len());
        let mut pen = 0.0f32;
        let mut previous: Option<GlyphId> = None;
        for c in text.chars() {
            let id = scaled.glyph_id(c);
            if let Some(p) = previous {
                pen += scaled.kern(p, id);
            }
            glyphs.push(PlacedGlyph { id, x: pen });
            pen += scaled.h_advance(id);
            previous = Some(id);
        }
        Line {
            size,
            glyphs,
            width: pen,
            ascent: scaled.ascent(),
        }
    }

    /// Height from the top of the line to its bottom (ascent to descent).
    pub fn height(&self) -> f32 {
        self.size
    }

    /// Every pixel the line covers, with its coverage (0 to 1), relative
    /// to the line's top left; the baseline is at a whole pixel, so every
    /// glyph on it rasterizes alike.
    pub fn coverage(&self, mut pixel: impl FnMut(i32, i32, f32)) {
        let baseline = self.ascent.round();
        for g in &self.glyphs {
            let glyph = g.id.with_scale_and_position(self.size, point(g.x, baseline));
            if let Some(outline) = font().outline_glyph(glyph) {
                let bounds = outline.px_bounds();
                outline
                    .draw(|x, y, c| pixel(bounds.min.x as i32 + x as i32, bounds.min.y as i32 + y as i32, c));
            }
        }
    }
}

/// A pixel backend whose text is set by [`Line`].
pub struct Typeset<B> {
    inner: B,
}

impl<B: DrawingBackend> Typeset<B> {
    pub fn new(inner: B) -> Self {
        Typeset { inner }
    }
}

/// The box plotters places text by: the advance width and the line height.
fn text_box(line: &Line) -> (u32, u32) {
    (line.width.ceil() as u32, line.height().ceil() as u32)
}

impl<B: DrawingBackend> DrawingBackend for Typeset<B> {
    type ErrorType = B::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.inner.present()
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.inner.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.inner.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.inner.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.inner.fill_polygon(vert, style)
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.inner.blit_bitmap(pos, size, src)
    }

    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> Result<(u32, u32), DrawingErrorKind<B::ErrorType>> {
        Ok(text_box(&Line::new(text, style.size() as f32)))
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let line = Line::new(text, style.size() as f32);
        let (width, height) = text_box(&line);
        let (width, height) = (width as i32, height as i32);
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Center => -width / 2,
            HPos::Right => -width,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => -height / 2,
            VPos::Bottom => -height,
        };
        let rotation = style.transform();
        let (w, h) = self.get_size();
        let mut pixels = Vec::new();
        line.coverage(|x, y, c| {
            let (x, y) = rotation.transform(x + dx, y + dy);
            let (x, y) = (pos.0 + x, pos.1 + y);
            if x >= 0 && y >= 0 && (x as u32) < w && (y as u32) < h && c > 0.0 {
                pixels.push(((x, y), c));
            }
        });
        for (at, c) in pixels {
            self.inner.draw_pixel(
                at,
                BackendColor {
                    alpha: color.alpha * f64::from(c.min(1.0)),
                    rgb: color.rgb,
                },
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ink per pixel column and row of a line, rasterized.
    fn ink(line: &Line) -> Vec<(i32, i32, f32)> {
        let mut out = Vec::new();
        line.coverage(|x, y, c| {
            if c > 0.0 {
                out.push((x, y, c))
            }
        });
        out
    }

    #[test]
    fn glyphs_advance_by_their_advance_and_kerning_unrounded() {
        let scaled = font().as_scaled(PxScale::from(14.0));
        for text in ["tls", "tcp+tls", "AVAT", "loopback"] {
            let line = Line::new(text, 14.0);
            let ids: Vec<GlyphId> = text.chars().map(|c| scaled.glyph_id(c)).collect();
            let mut pen = 0.0;
            for (i, g) in line.glyphs.iter().enumerate() {
                if i > 0 {
                    pen += scaled.kern(ids[i - 1], ids[i]);
                }
                assert_eq!(g.x, pen, "{text}: glyph {i}");
                pen += scaled.h_advance(ids[i]);
            }
            assert_eq!(line.width, pen, "{text}");
        }
        // DejaVu Sans kerns "AV": the pair sits closer than its advances.
        let av = Line::new("AV", 14.0);
        assert!(av.glyphs[1].x < scaled.h_advance(scaled.glyph_id('A')));
    }

    #[test]
    fn equal_letters_are_equally_spaced() {
        // The ink centre of each 'l' of "llll": one advance apart, within
        // what anti-aliasing moves it, whatever the pen's fractions.
        let line = Line::new("llll", 13.0);
        let step = line.glyphs[1].x - line.glyphs[0].x;
        let mut sums = vec![(0.0f32, 0.0f32); line.glyphs.len()];
        for (x, _, c) in ink(&line) {
            let centre = x as f32 + 0.5;
            let glyph = ((centre - line.glyphs[0].x) / step).floor() as usize;
            sums[glyph].0 += centre * c;
            sums[glyph].1 += c;
        }
        let centres: Vec<f32> = sums.iter().map(|(moment, weight)| moment / weight).collect();
        for pair in centres.windows(2) {
            let gap = pair[1] - pair[0];
            assert!((gap - step).abs() < 0.35, "{centres:?}, advance {step}");
        }
    }

    #[test]
    fn a_period_sits_on_the_baseline() {
        for size in [12.0, 13.0, 14.0, 22.0] {
            let line = Line::new("x.", size);
            let ink = ink(&line);
            let split = line.glyphs[1].x as i32;
            let bottom = |left: bool| {
                ink.iter()
                    .filter(|(x, _, c)| (*x < split) == left && *c > 0.5)
                    .map(|p| p.1)
                    .max()
                    .unwrap()
            };
            assert_eq!(bottom(true), bottom(false), "size {size}: x and . end on one row");
            assert_eq!(bottom(false), line.ascent.round() as i32 - 1, "size {size}");
        }
    }
}
