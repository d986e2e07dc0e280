//! Native fields of formats whose ids or state the neutral model cannot express.
//! Kept so that re-emitting the native format is lossless, even two gateways later.

/// Everything native a context carries. Boxed so a context without originals stays small.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Originals {
    /// From `sw8` (and `sw8-x`).
    pub skywalking: Option<Box<SkyWalking>>,
    /// From `EagleEye-*`.
    pub eagleeye: Option<Box<EagleEye>>,
    /// From `x-datadog-*`.
    pub datadog: Option<Box<Datadog>>,
    /// From `X-Amzn-Trace-Id`.
    pub xray: Option<Box<XRay>>,
    /// From `X-INSTANA-*`.
    pub instana: Option<Box<Instana>>,
    /// `jaeger-debug-id`: a correlation id that forces a debug trace; kept as a span
    /// attribute, never propagated as an id.
    pub jaeger_debug_id: Option<String>,
}

/// The caller's `sw8` fields, decoded from base64 (wire-formats §11.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SkyWalking {
    /// Field 2: the literal trace id string (any format).
    pub trace_id: String,
    /// Field 3: the caller's segment id.
    pub segment_id: String,
    /// Field 4: index of the caller's exit span inside its segment.
    pub span_index: i32,
    /// Field 5: the caller's service name.
    pub service: String,
    /// Field 6: the caller's service instance.
    pub instance: String,
    /// Field 7: the caller's first entry endpoint.
    pub endpoint: String,
    /// Field 8: the address the caller used to reach this hop.
    pub address: String,
    /// The `sw8-x` extension header, verbatim, forwarded unchanged when present.
    pub extension: Option<String>,
}

/// The caller's EagleEye fields (wire-formats §12).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EagleEye {
    /// `EagleEye-TraceID`, verbatim.
    pub trace_id: String,
    /// `EagleEye-RpcID`, verbatim (`0`, `0.1`, ...).
    pub rpc_id: String,
    /// `EagleEye-Sampled`, verbatim, when present.
    pub sampled: Option<String>,
}

impl EagleEye {
    /// The RpcID of the gateway's `call_index`-th outgoing call (1-based) for this
    /// inbound request: the gateway is the server side of `rpc_id`, so its calls are
    /// `rpc_id.1`, `rpc_id.2`, ... (wire-formats §12). An empty inbound id counts as
    /// the root `0`.
    pub fn child_rpc_id(&self, call_index: u32) -> String {
        let parent = if self.rpc_id.is_empty() {
            "0"
        } else {
            &self.rpc_id
        };
        // Digits written by hand into a string of exactly the result's length (it often
        // becomes a header value, which can then take it without a copy).
        let mut digits = [0u8; 10];
        let mut start = digits.len();
        let mut rest = call_index;
        for (i, slot) in digits.iter_mut().enumerate().rev() {
            *slot = b'0' + (rest % 10) as u8;
            rest /= 10;
            start = i;
            if rest == 0 {
                break;
            }
        }
        let digits = digits.get(start..).unwrap_or_default();
        let mut out = String::with_capacity(parent.len() + 1 + digits.len());
        out.push_str(parent);
        out.push('.');
        out.push_str(std::str::from_utf8(digits).unwrap_or("0"));
        out
    }
}

/// Datadog state that has no neutral field (wire-formats §8).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Datadog {
    /// `x-datadog-sampling-priority` as received (-1, 0, 1, 2, ...).
    pub priority: Option<i32>,
    /// `x-datadog-origin`.
    pub origin: Option<String>,
    /// `_dd.p.*` propagation tags other than `_dd.p.tid`, in order.
    pub tags: Vec<(String, String)>,
}

/// X-Ray keys other than `Root`, `Parent` and `Sampled`, in order (`Self`, `Lineage`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct XRay {
    /// Extra `Key=Value` parts, forwarded unchanged.
    pub extra: Vec<(String, String)>,
}

/// Instana state that has no neutral field.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Instana {
    /// The `X-INSTANA-L` correlation part after `1,` (`correlationType=web;correlationId=...`).
    pub correlation: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_rpc_ids() {
        let ee = |rpc: &str| EagleEye {
            rpc_id: rpc.into(),
            ..EagleEye::default()
        };
        assert_eq!(ee("").child_rpc_id(1), "0.1");
        assert_eq!(ee("0.2").child_rpc_id(0), "0.2.0");
        assert_eq!(ee("0.2").child_rpc_id(u32::MAX), "0.2.4294967295");
        let id = ee("0.1.2").child_rpc_id(37);
        assert_eq!((id.as_str(), id.capacity()), ("0.1.2.37", 8));
    }
}
