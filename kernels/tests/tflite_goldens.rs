//! Single int8 operators against the TFLite reference kernels themselves.
//!
//! `golden/make_op_goldens.py` built one-operator .tflite models and ran them
//! with LiteRT's reference op resolver. Here the integer parameters are
//! derived from the same float scales by bench's own host functions
//! (`conv_output_multiplier`, `AddParams::new`, `SoftmaxParams::new`,
//! `activation_range_i8`) and every output byte must match.

use kernels::geometry::{Activation, ConvGeometry, Padding, Shape};
use kernels::int8::{self, AddParams, Clamp, DenseGeometry, OutputStage, SoftmaxParams};
use kernels::quant::{
    activation_range_i8, conv_output_multiplier, fully_connected_output_multiplier, Rounding,
};
use serde_json::Value;

fn ints<T: TryFrom<i64>>(v: &Value) -> Vec<T> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| T::try_from(x.as_i64().unwrap()).ok().unwrap())
        .collect()
}

fn f(v: &Value) -> f32 {
    v.as_f64().unwrap() as f32
}

fn i(v: &Value) -> i32 {
    v.as_i64().unwrap() as i32
}

fn pair(v: &Value) -> (u32, u32) {
    let p: Vec<u32> = ints(v);
    (p[0], p[1])
}

fn shape(v: &Value) -> Shape {
    let s: Vec<u32> = ints(v);
    Shape::new(s[0], s[1], s[2], s[3])
}

fn activation(v: &Value) -> Activation {
    match v.as_str().unwrap() {
        "none" => Activation::None,
        "relu" => Activation::Relu,
        "relu6" => Activation::Relu6,
        other => panic!("unknown activation {other}"),
    }
}

fn padding(v: &Value) -> Padding {
    if v.as_str() == Some("same") {
        Padding::Same
    } else {
        Padding::Valid
    }
}

/// Runs one case with bench's kernels; returns the output bytes.
fn run_case(c: &Value) -> Vec<i8> {
    let op = c["op"].as_str().unwrap();
    match op {
        "conv2d" | "depthwise_conv2d" => {
            let (input_shape, output_shape) = (shape(&c["input_shape"]), shape(&c["output_shape"]));
            let g = ConvGeometry::new(
                input_shape,
                output_shape.c,
                pair(&c["kernel"]),
                pair(&c["stride"]),
                pair(&c["dilation"]),
                padding(&c["padding"]),
            );
            assert_eq!(g.output, output_shape, "output shape of {c}");
            let (in_s, out_s, out_zp) = (
                f(&c["input_scale"]),
                f(&c["output_scale"]),
                i(&c["output_zero_point"]),
            );
            let requant: Vec<_> = c["filter_scales"]
                .as_array()
                .unwrap()
                .iter()
                .map(|fs| conv_output_multiplier(in_s, f(fs), out_s))
                .collect();
            let (act_min, act_max) =
                activation_range_i8(activation(&c["activation"]), out_s, out_zp);
            let stage = OutputStage {
                input_offset: -i(&c["input_zero_point"]),
                filter_offset: 0,
                output_offset: out_zp,
                requant: &requant,
                act_min,
                act_max,
                rounding: Rounding::Double,
            };
            let (input, filter, bias): (Vec<i8>, Vec<i8>, Vec<i32>) =
                (ints(&c["input"]), ints(&c["filter"]), ints(&c["bias"]));
            let mut out = vec![0i8; g.output.elements().unwrap()];
            if op == "conv2d" {
                int8::conv2d(&g, &stage, &input, &filter, Some(&bias), &mut out).unwrap();
            } else {
                int8::depthwise_conv2d(
                    &g,
                    c["depth_multiplier"].as_u64().unwrap() as u32,
                    &stage,
                    &input,
                    &filter,
                    Some(&bias),
                    &mut out,
                )
                .unwrap();
            }
            out
        }
        "fully_connected" => {
            let g = DenseGeometry {
                batch: i(&c["batch"]) as u32,
                in_features: i(&c["in_features"]) as u32,
                out_features: i(&c["out_features"]) as u32,
            };
            let (in_s, out_s, out_zp) = (
                f(&c["input_scale"]),
                f(&c["output_scale"]),
                i(&c["output_zero_point"]),
            );
            let requant =
                vec![
                    fully_connected_output_multiplier(in_s, f(&c["filter_scales"][0]), out_s);
                    g.out_features as usize
                ];
            let (act_min, act_max) =
                activation_range_i8(activation(&c["activation"]), out_s, out_zp);
            // LiteRT's reference FULLY_CONNECTED rounds once (see `Rounding::Single`).
            let stage = OutputStage {
                input_offset: -i(&c["input_zero_point"]),
                filter_offset: 0,
                output_offset: out_zp,
                requant: &requant,
                act_min,
                act_max,
                rounding: Rounding::Single,
            };
            let mut out = vec![0i8; (g.batch * g.out_features) as usize];
            int8::fully_connected(
                &g,
                &stage,
                &ints::<i8>(&c["input"]),
                &ints::<i8>(&c["filter"]),
                Some(&ints::<i32>(&c["bias"])),
                &mut out,
            )
            .unwrap();
            out
        }
        "avg_pool" | "max_pool" => {
            let (input_shape, output_shape) = (shape(&c["input_shape"]), shape(&c["output_shape"]));
            let g = ConvGeometry::new(
                input_shape,
                input_shape.c,
                pair(&c["kernel"]),
                pair(&c["stride"]),
                (1, 1),
                padding(&c["padding"]),
            );
            assert_eq!(g.output, output_shape, "output shape of {c}");
            let (min, max) = activation_range_i8(
                activation(&c["activation"]),
                f(&c["scale"]),
                i(&c["zero_point"]),
            );
            let mut out = vec![0i8; g.output.elements().unwrap()];
            let (clamp, input) = (Clamp { min, max }, ints::<i8>(&c["input"]));
            if op == "avg_pool" {
                int8::avg_pool(
                    &g,
                    clamp,
                    int8::PoolRounding::AwayFromZero,
                    &input,
                    &mut out,
                )
            } else {
                int8::max_pool(&g, clamp, &input, &mut out)
            }
            .unwrap();
            out
        }
        "add" => {
            let (out_s, out_zp) = (f(&c["output_scale"]), i(&c["output_zero_point"]));
            let act = activation_range_i8(activation(&c["activation"]), out_s, out_zp);
            let p = AddParams::new(
                (f(&c["a_scale"]), i(&c["a_zero_point"])),
                (f(&c["b_scale"]), i(&c["b_zero_point"])),
                (out_s, out_zp),
                act,
            );
            let a: Vec<i8> = ints(&c["a"]);
            let mut out = vec![0i8; a.len()];
            int8::add(&p, &a, &ints::<i8>(&c["b"]), &mut out).unwrap();
            out
        }
        "softmax" => {
            let p = SoftmaxParams::new(f(&c["beta"]), f(&c["input_scale"]));
            let input: Vec<i8> = ints(&c["input"]);
            let mut out = vec![0i8; input.len()];
            int8::softmax(&p, c["depth"].as_u64().unwrap() as usize, &input, &mut out).unwrap();
            out
        }
        other => panic!("unknown op {other}"),
    }
}

/// Every case with the kernels the target compiles, and on x86-64 again
/// with each SIMD level this CPU has selected (the only test in this
/// binary, so the selection is not shared with another).
#[test]
fn int8_operators_match_tflite_reference_kernels() {
    #[cfg(target_arch = "x86_64")]
    for isa in kernels::x86::Isa::ALL
        .into_iter()
        .filter(|isa| isa.is_available())
    {
        assert_eq!(kernels::x86::select(isa), isa);
        check_every_case(isa.name());
    }
    #[cfg(not(target_arch = "x86_64"))]
    check_every_case("compiled");
}

fn check_every_case(kernels: &str) {
    let goldens: Value = serde_json::from_str(include_str!("golden/tflite_ops.json")).unwrap();
    let cases = goldens["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 84);
    let mut failures = Vec::new();
    for (index, c) in cases.iter().enumerate() {
        let want: Vec<i8> = ints(&c["output"]);
        let got = run_case(c);
        if got != want {
            let differing = got.iter().zip(&want).filter(|(a, b)| a != b).count();
            let worst = got
                .iter()
                .zip(&want)
                .map(|(&a, &b)| (a as i32 - b as i32).abs())
                .max()
                .unwrap_or(0);
            failures.push(format!("{kernels} kernels, case {index} ({}): {differing} of {} bytes differ, by up to {worst}", c["op"], want.len()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
