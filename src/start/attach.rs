//! A StartPod that meets a start of the same pod in flight. The same
//! request (uid, namespace/name and a digest of its canonical encoding)
//! attaches to it: its caller gets the events so far (`replay.rs`) and
//! every later one, ending with the same terminal event — one start, many
//! streams. Another request for the pod is refused (ABORTED) until that
//! start ends. The registry is `state::inflight`; a start stays in it from
//! before its first event until after its terminal event.
use std::pin::Pin;

use futures::Stream;
use prost::Message;
use tonic::Status;

use super::{EventSink, StartError, Starter};
use crate::proto::v1::{PodMetadata, StartEvent, StartPodRequest};
use crate::state::inflight::{Found, Registration, StartKey};

/// A caller's stream of a request's events.
pub type CallerStream = Pin<Box<dyn Stream<Item = Result<StartEvent, Status>> + Send>>;

/// What a StartPod becomes.
pub enum Joined {
    /// The same start is in flight: this caller's stream of it.
    Attached(CallerStream),
    /// This request starts the pod: the flow's sink, the caller's stream,
    /// and what keeps the start findable (dropped after the flow ends).
    Lead {
        sink: EventSink,
        stream: CallerStream,
        registration: Option<Registration<EventSink>>,
    },
}

impl std::fmt::Debug for Joined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Joined::Attached(_) => f.write_str("Attached"),
            Joined::Lead { sink, .. } => f.debug_struct("Lead").field("sink", sink).finish(),
        }
    }
}

impl Starter {
    /// What a StartPod is known by among the starts in flight.
    pub fn start_key(&self, req: &StartPodRequest) -> StartKey {
        let meta = pod_meta(req);
        self.inner
            .in_flight
            .key(&meta.uid, &meta.namespace, &meta.name, &canonical(req))
    }

    /// The caller's stream of the start in flight for `key`, if that is
    /// the same request; ABORTED if the pod's start in flight is another.
    /// Checked before the request takes a start place: attaching costs
    /// none.
    pub fn attach(
        &self,
        key: &StartKey,
        buffer: usize,
    ) -> Result<Option<CallerStream>, StartError> {
        match self.inner.in_flight.find(key) {
            Found::Same(sink) => Ok(self.attached(key, &sink, buffer)),
            Found::Differs => Err(in_flight(key)),
            Found::Absent => Ok(None),
        }
    }

    /// Attaches to the start in flight for `key`, or makes this request
    /// the pod's start (its sink and stream, with `buffer` events for the
    /// caller).
    pub fn join(
        &self,
        key: &StartKey,
        meta: &PodMetadata,
        buffer: usize,
    ) -> Result<Joined, StartError> {
        let made = self.inner.in_flight.join(key, || {
            let (sink, stream) =
                EventSink::for_caller(meta, self.bus(), buffer, self.metrics().clone());
            (sink.clone(), (sink, stream))
        });
        match made {
            Ok(((sink, stream), registration)) => Ok(Joined::Lead {
                sink,
                stream: Box::pin(stream),
                registration,
            }),
            Err(Found::Same(sink)) => self
                .attached(key, &sink, buffer)
                .map(Joined::Attached)
                .ok_or_else(|| StartError::TaskFailed("a start in flight has no callers".into())),
            Err(Found::Differs | Found::Absent) => Err(in_flight(key)),
        }
    }

    fn attached(&self, key: &StartKey, sink: &EventSink, buffer: usize) -> Option<CallerStream> {
        let stream = sink.attach(buffer)?;
        self.inner.metrics.start_attached();
        tracing::info!(
            pod_uid = %key.uid(),
            pod = %key.pod(),
            "StartPod attached to the start of this pod in flight"
        );
        Some(Box::pin(stream))
    }
}

fn pod_meta(req: &StartPodRequest) -> PodMetadata {
    req.pod
        .as_ref()
        .and_then(|p| p.metadata.clone())
        .unwrap_or_default()
}

fn in_flight(key: &StartKey) -> StartError {
    StartError::StartInFlight {
        pod: key.pod().to_string(),
        uid: key.uid().to_string(),
    }
}

/// The request's protobuf encoding with its maps (pod labels, annotations,
/// sysctls) taken out and appended sorted: equal requests give equal bytes
/// whatever order their maps iterate in.
fn canonical(req: &StartPodRequest) -> Vec<u8> {
    let mut req = req.clone();
    let mut maps = Vec::new();
    if let Some(pod) = req.pod.as_mut() {
        maps.push(std::mem::take(&mut pod.sysctls));
        if let Some(meta) = pod.metadata.as_mut() {
            maps.push(std::mem::take(&mut meta.labels));
            maps.push(std::mem::take(&mut meta.annotations));
        }
    }
    let mut out = req.encode_to_vec();
    for map in maps {
        let mut pairs: Vec<_> = map.into_iter().collect();
        pairs.sort_unstable();
        out.extend((pairs.len() as u64).to_le_bytes());
        for (k, v) in pairs {
            for s in [k, v] {
                out.extend((s.len() as u64).to_le_bytes());
                out.extend(s.as_bytes());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::proto::v1::{Container, PodSpec};

    fn request(pairs: &[(String, String)]) -> StartPodRequest {
        // A new map each time: its iteration order is its own.
        let map: HashMap<String, String> = pairs.iter().cloned().collect();
        StartPodRequest {
            pod: Some(PodSpec {
                metadata: Some(PodMetadata {
                    uid: "u1".into(),
                    namespace: "ns".into(),
                    name: "web".into(),
                    labels: map.clone(),
                    annotations: map.clone(),
                    ..Default::default()
                }),
                sysctls: map,
                containers: vec![Container {
                    name: "app".into(),
                    image: "busybox".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn equal_requests_encode_equally_whatever_their_map_order() {
        let pairs: Vec<_> = (0..64)
            .map(|i| (format!("key-{i}"), format!("value-{i}")))
            .collect();
        let mut reversed = pairs.clone();
        reversed.reverse();
        let first = canonical(&request(&pairs));
        for _ in 0..16 {
            assert_eq!(canonical(&request(&reversed)), first);
        }
    }

    #[test]
    fn any_difference_shows() {
        let base = canonical(&request(&[("a".into(), "b".into())]));
        assert_ne!(canonical(&request(&[("a".into(), "c".into())])), base);
        assert_ne!(canonical(&request(&[("ab".into(), String::new())])), base);
        assert_ne!(canonical(&request(&[])), base);
        let mut other = request(&[("a".into(), "b".into())]);
        other.pod.as_mut().unwrap().containers[0].image = "nginx".into();
        assert_ne!(canonical(&other), base);
        let mut other = request(&[("a".into(), "b".into())]);
        other.options = Some(Default::default());
        assert_ne!(canonical(&other), base);
    }
}
