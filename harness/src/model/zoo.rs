//! Reference architectures, built by name: the four MLPerf Tiny models,
//! two keyword spotters small enough for a board with 16 KiB of RAM
//! (TensorFlow Lite Micro's micro_speech, and the DNN-S of ARM's "Hello
//! Edge" study) and a BinaryNet-style CNN.
//! Batch norm is folded into the preceding layer, as in the deployed
//! int8 models, so MACs and parameters match the MLPerf Tiny references.

use super::graph::{Graph, GraphBuilder, TensorId, Win};
use kernels::geometry::Activation::{self, Relu, Relu6};
use kernels::geometry::Shape;

/// No fused activation (Activation::None, named so it cannot shadow `Option::None`).
const LINEAR: Activation = Activation::None;

/// Names the zoo knows, in a stable order.
pub const NAMES: [&str; 7] = [
    "ds-cnn",
    "resnet8",
    "mobilenet-v1-0.25",
    "autoencoder",
    "micro-speech",
    "dnn-kws",
    "binarynet-cifar",
];

/// The architecture with this name, if the zoo has it.
pub fn build(name: &str) -> Option<Graph> {
    Some(match name {
        "ds-cnn" => ds_cnn(),
        "resnet8" => resnet8(),
        "mobilenet-v1-0.25" => mobilenet_v1_025(),
        "autoencoder" => autoencoder(),
        "micro-speech" => micro_speech(),
        "dnn-kws" => dnn_kws(),
        "binarynet-cifar" => binarynet_cifar(),
        _ => return None,
    })
}

/// The head the three classifiers share: global average pool, flatten,
/// dense to `classes` logits, softmax.
fn classifier_head(mut b: GraphBuilder, x: TensorId, classes: u32) -> Graph {
    let s = b.shape(x);
    let x = b.avg_pool("pool", x, Win::valid((s.h, s.w)));
    let x = b.flatten("flatten", x);
    let x = b.dense("fc", x, classes, LINEAR);
    let y = b.softmax("softmax", x);
    b.finish(y)
}

/// Keyword spotting DS-CNN (MLPerf Tiny KWS): 49x10x1 MFCC input, 12 classes.
pub fn ds_cnn() -> Graph {
    let mut b = GraphBuilder::new("ds-cnn", Shape::new(1, 49, 10, 1));
    let mut x = b.conv("conv1", 0, 64, Win::same((10, 4)).stride(2), Relu);
    for i in 1..=4 {
        x = b.depthwise(&format!("dw{i}"), x, Win::same((3, 3)), Relu);
        x = b.conv(&format!("pw{i}"), x, 64, Win::same((1, 1)), Relu);
    }
    classifier_head(b, x, 12)
}

/// Image classification ResNet-8 (MLPerf Tiny IC): 32x32x3 CIFAR-10 input.
pub fn resnet8() -> Graph {
    let mut b = GraphBuilder::new("resnet8", Shape::new(1, 32, 32, 3));
    let mut x = b.conv("conv1", 0, 16, Win::same((3, 3)), Relu);
    for (stage, filters, stride) in [(1, 16, 1), (2, 32, 2), (3, 64, 2)] {
        let y = b.conv(
            &format!("stack{stage}.conv1"),
            x,
            filters,
            Win::same((3, 3)).stride(stride),
            Relu,
        );
        let y = b.conv(
            &format!("stack{stage}.conv2"),
            y,
            filters,
            Win::same((3, 3)),
            LINEAR,
        );
        let shortcut = if stride == 1 {
            x
        } else {
            b.conv(
                &format!("stack{stage}.shortcut"),
                x,
                filters,
                Win::same((1, 1)).stride(stride),
                LINEAR,
            )
        };
        x = b.add(&format!("stack{stage}.add"), y, shortcut, Relu);
    }
    classifier_head(b, x, 10)
}

/// Visual wake words MobileNetV1 with width 0.25 (MLPerf Tiny VWW): 96x96x3, 2 classes.
pub fn mobilenet_v1_025() -> Graph {
    let mut b = GraphBuilder::new("mobilenet-v1-0.25", Shape::new(1, 96, 96, 3));
    let mut x = b.conv("conv1", 0, 8, Win::same((3, 3)).stride(2), Relu6);
    let blocks = [
        (16, 1),
        (32, 2),
        (32, 1),
        (64, 2),
        (64, 1),
        (128, 2),
        (128, 1),
        (128, 1),
        (128, 1),
        (128, 1),
        (128, 1),
        (256, 2),
        (256, 1),
    ];
    for (i, (filters, stride)) in blocks.into_iter().enumerate() {
        x = b.depthwise(
            &format!("block{}.dw", i + 1),
            x,
            Win::same((3, 3)).stride(stride),
            Relu6,
        );
        x = b.conv(
            &format!("block{}.pw", i + 1),
            x,
            filters,
            Win::same((1, 1)),
            Relu6,
        );
    }
    classifier_head(b, x, 2)
}

/// Anomaly detection autoencoder (MLPerf Tiny AD): 640 in, 640 out, bottleneck 8.
pub fn autoencoder() -> Graph {
    let mut b = GraphBuilder::new("autoencoder", Shape::flat(1, 640));
    let mut x = 0;
    for (i, units) in [128, 128, 128, 128, 8, 128, 128, 128, 128]
        .into_iter()
        .enumerate()
    {
        x = b.dense(&format!("dense{}", i + 1), x, units, Relu);
    }
    let y = b.dense("output", x, 640, LINEAR);
    b.finish(y)
}

/// TensorFlow Lite Micro's micro_speech keyword model (the `tiny_conv`
/// architecture of TensorFlow's speech_commands example): a 49x40
/// spectrogram, one 10x8 convolution with 8 filters at stride 2, and a
/// dense layer to 4 classes (silence, unknown, "yes", "no").
pub fn micro_speech() -> Graph {
    let mut b = GraphBuilder::new("micro-speech", Shape::new(1, 49, 40, 1));
    let x = b.conv("conv1", 0, 8, Win::same((10, 8)).stride(2), Relu);
    let x = b.flatten("flatten", x);
    let x = b.dense("fc", x, 4, LINEAR);
    let y = b.softmax("softmax", x);
    b.finish(y)
}

/// Keyword spotting DNN-S of Zhang et al., "Hello Edge: Keyword Spotting
/// on Microcontrollers" (ARM, 2017): 25 frames of 10 MFCC features, three
/// fully connected layers of 144 units, 12 classes.
pub fn dnn_kws() -> Graph {
    let mut b = GraphBuilder::new("dnn-kws", Shape::flat(1, 250));
    let mut x = 0;
    for i in 1..=3 {
        x = b.dense(&format!("fc{i}"), x, 144, Relu);
    }
    let x = b.dense("fc4", x, 12, LINEAR);
    let y = b.softmax("softmax", x);
    b.finish(y)
}

/// A BinaryNet-style CNN (Courbariaux et al. 2016) at one quarter of its
/// width, for CIFAR-10 32x32x3. The zoo gives the architecture; the
/// variant gives the precision: `scheme = "binary"` makes every conv and
/// dense layer binary but the first and the last (as BinaryNet and Larq's
/// zoo keep them), and `scheme = "int8"` is its int8 twin of the same
/// shapes. Batch norm is folded into each layer's output scale.
pub fn binarynet_cifar() -> Graph {
    let mut b = GraphBuilder::new("binarynet-cifar", Shape::new(1, 32, 32, 3));
    let x = b.conv("conv1", 0, 32, Win::same((3, 3)), LINEAR);
    let x = b.conv("conv2", x, 32, Win::same((3, 3)), LINEAR);
    let x = b.max_pool("pool2", x, Win::valid((2, 2)).stride(2));
    let x = b.conv("conv3", x, 64, Win::same((3, 3)), LINEAR);
    let x = b.conv("conv4", x, 64, Win::same((3, 3)), LINEAR);
    let x = b.max_pool("pool4", x, Win::valid((2, 2)).stride(2));
    let x = b.conv("conv5", x, 128, Win::same((3, 3)), LINEAR);
    let x = b.conv("conv6", x, 128, Win::same((3, 3)), LINEAR);
    let x = b.max_pool("pool6", x, Win::valid((2, 2)).stride(2));
    let x = b.flatten("flatten", x);
    let x = b.dense("fc1", x, 256, LINEAR);
    let x = b.dense("fc2", x, 10, LINEAR);
    let y = b.softmax("softmax", x);
    b.finish(y)
}
