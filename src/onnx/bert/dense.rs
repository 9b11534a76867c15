//! The dense layers of the BERT-QA graph in every weight format: fp32, per-tensor dynamic
//! int8, and the batch-invariant int8 forms (row-wise or static activation steps) with
//! SmoothQuant folding. Each dense input is a site ([`Site`]) that calibration graphs record.

use std::borrow::Cow;

use super::layers::Builder;
use super::{Smoothing, WeightFormat};
use crate::onnx::activation_quant::{int8_matmul, quantize_rows, quantize_static, QuantizedInput};
use crate::onnx::quantize::{quantize_columns, transpose};
use crate::onnx::smooth::{smoothing_factors, Site};
use crate::onnx::ExportError;

/// What the dense layers reading one site take: the (smoothed) input, the smoothing factors to
/// fold into their weights, and for the batch-invariant int8 forms the input quantized once
/// for all of them.
pub(super) struct SiteInput {
    pub(super) x: String,
    pub(super) factors: Option<Vec<f32>>,
    pub(super) quantized: Option<QuantizedInput>,
}

impl SiteInput {
    /// `x` as it is: the input of an fp32 layer.
    pub(super) fn plain(x: String) -> Self {
        Self {
            x,
            factors: None,
            quantized: None,
        }
    }
}

impl Builder<'_> {
    /// `x @ W^T + b` for the Linear layer `prefix` (`[out, in]` weight).
    pub(super) fn dense(
        &mut self,
        prefix: &str,
        out: usize,
        inp: usize,
        format: WeightFormat,
        site: &SiteInput,
    ) -> Result<String, ExportError> {
        let w = self.weights.get(&format!("{prefix}.weight"), &[out, inp])?;
        let b = self.weights.get(&format!("{prefix}.bias"), &[out])?;
        let bias = self
            .g
            .float_tensor(&format!("{prefix}.bias"), &[out], &b.data);
        if format == WeightFormat::Fp32 {
            let wt = self.g.float_tensor(
                &format!("{prefix}.weight_t"),
                &[inp, out],
                &transpose(&w.data, out, inp),
            );
            let product = self.g.node("MatMul", &[&site.x, &wt], vec![]);
            return Ok(self.g.node("Add", &[&product, &bias], vec![]));
        }
        let weight = match &site.factors {
            None => Cow::Borrowed(&w.data),
            Some(factors) => {
                let mut smoothed = w.data.clone();
                for row in smoothed.chunks_mut(inp) {
                    row.iter_mut().zip(factors).for_each(|(v, f)| *v *= f);
                }
                Cow::Owned(smoothed)
            }
        };
        let q = quantize_columns(&weight, out, inp);
        let values = self
            .g
            .int8_tensor(&format!("{prefix}.weight_int8"), &[inp, out], &q.values);
        let scales = self
            .g
            .float_tensor(&format!("{prefix}.weight_scale"), &[out], &q.scales);
        // `site_input` quantizes the input exactly when the format is batch-invariant.
        if let Some(quantized) = &site.quantized {
            return Ok(int8_matmul(&mut self.g, quantized, &values, &scales, &bias));
        }
        let zeros = self
            .g
            .int8_tensor(&format!("{prefix}.weight_zero"), &[out], &vec![0; out]);
        Ok(self.g.contrib(
            "DynamicQuantizeMatMul",
            &[&site.x, &values, &scales, &zeros, &bias],
            vec![],
        ))
    }

    /// What the dense layers `layers` (prefix and output width; each reads `inp` channels) take
    /// at `site` of layer `l`. For the batch-invariant int8 forms the input is divided by the
    /// smoothing factors (returned for [`Self::dense`] to fold into the weights) and quantized
    /// once for all of them. Calibration graphs record the input as those layers see it:
    /// smoothed, since that is what the static steps are measured on.
    pub(super) fn site_input(
        &mut self,
        x: &str,
        l: usize,
        site: Site,
        layers: &[(&str, usize)],
        inp: usize,
        format: WeightFormat,
    ) -> Result<SiteInput, ExportError> {
        let key = site.key(l);
        let mut input = SiteInput::plain(x.to_string());
        if format.is_batch_invariant_int8() {
            if let Some(smoothing) = self.smoothing {
                let factors = self.smoothing_factors(smoothing, &key, layers, inp)?;
                let inverse: Vec<f32> = factors.iter().map(|f| 1.0 / f).collect();
                let divisor = self
                    .g
                    .float_tensor(&format!("smooth.{key}"), &[inp], &inverse);
                input.x = self.g.node("Mul", &[x, &divisor], vec![]);
                input.factors = Some(factors);
            }
            input.quantized = Some(self.quantize_input(&input.x, &key, site, format)?);
        }
        if self.observe {
            self.observed.push((key, input.x.clone(), inp));
        }
        Ok(input)
    }

    /// The SmoothQuant factors of site `key`, read by `layers` with `inp` channels.
    fn smoothing_factors(
        &self,
        smoothing: Smoothing,
        key: &str,
        layers: &[(&str, usize)],
        inp: usize,
    ) -> Result<Vec<f32>, ExportError> {
        let ranges =
            smoothing.ranges.by_site.get(key).ok_or_else(|| {
                ExportError::Calibration(format!("no activation ranges for {key}"))
            })?;
        if ranges.len() != inp {
            return Err(ExportError::Calibration(format!(
                "ranges for {key} have {} channels, the layer takes {inp}",
                ranges.len()
            )));
        }
        let mut weights = vec![];
        for (prefix, out) in layers {
            weights.push(
                self.weights
                    .get(&format!("{prefix}.weight"), &[*out, inp])?,
            );
        }
        let columns: Vec<&[f32]> = weights.iter().map(|w| w.data.as_slice()).collect();
        Ok(smoothing_factors(ranges, &columns, smoothing.alpha))
    }

    /// `x`, the input at `site` (key `key`), quantized as `format` does there: row by row, or
    /// with the site's calibrated step.
    fn quantize_input(
        &mut self,
        x: &str,
        key: &str,
        site: Site,
        format: WeightFormat,
    ) -> Result<QuantizedInput, ExportError> {
        if format.quantizes_rows_at(site) {
            return Ok(quantize_rows(&mut self.g, x));
        }
        let clips = self.clips.ok_or_else(|| {
            ExportError::Calibration(format!(
                "the {} graph needs calibrated clips",
                format.flag_name()
            ))
        })?;
        let step = clips.step(key).map_err(ExportError::Calibration)?;
        Ok(quantize_static(&mut self.g, x, key, step))
    }
}
