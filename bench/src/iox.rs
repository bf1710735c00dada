//! iceoryx2 publish/subscribe, both ends.
//!
//! Data: a `[u8]` slice service; the producer loans a slice of exactly the run's payload size
//! (`loan_slice_uninit`), copies the payload into it (`write_from_slice`, the same one copy the
//! ring's loan does) and sends it. The consumer reads the sample in place (iceoryx2 is
//! zero-copy: no copy out) and checksums every byte of it. Acks: a `u64` service back.
//!
//! Blocking mode pairs each publish/subscribe service with an iceoryx2 event service: the
//! sender notifies after each send and the receiver waits on its listener (`timed_wait`)
//! when its subscriber is empty. Polling mode spins on `receive`.
//!
//! Flow control as for the ring: the subscriber buffer holds [`proto::slots_for`] samples,
//! the producer keeps at most that many minus one unacknowledged, and the service refuses
//! overflow (`enable_safe_overflow(false)`, `RetryUntilDelivered`) so nothing is dropped
//! silently.

use std::io;
use std::time::Duration;

use iceoryx2::port::listener::Listener;
use iceoryx2::port::notifier::Notifier;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;

use crate::proto::{self, checksum, read_stamp, stamp, Consumer, Producer, Received};
use crate::transports::{Patience, RunSpec};

fn err<E: std::fmt::Debug>(what: &'static str) -> impl FnOnce(E) -> io::Error {
    move |e| io::Error::other(format!("iceoryx2 {what}: {e:?}"))
}

/// The services of one run. Both ends build them with the same settings.
struct Services {
    data: iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, [u8], ()>,
    data_event: iceoryx2::service::port_factory::event::PortFactory<ipc::Service>,
    ack: iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, u64, ()>,
    ack_event: iceoryx2::service::port_factory::event::PortFactory<ipc::Service>,
}

fn node() -> io::Result<Node<ipc::Service>> {
    set_log_level(LogLevel::Error);
    NodeBuilder::new()
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc::Service>()
        .map_err(err("node"))
}

fn services(node: &Node<ipc::Service>, spec: &RunSpec, create: bool) -> io::Result<Services> {
    let slots = proto::slots_for(spec.size) as usize;
    let name =
        |leaf: &str| ServiceName::new(&format!("epochfuse-bench/{}/{leaf}", spec.name)).map_err(err("name"));
    let data = node
        .service_builder(&name("data")?)
        .publish_subscribe::<[u8]>()
        .subscriber_max_buffer_size(slots)
        .history_size(0)
        .enable_safe_overflow(false)
        .max_publishers(1)
        .max_subscribers(1);
    let ack = node
        .service_builder(&name("ack")?)
        .publish_subscribe::<u64>()
        .subscriber_max_buffer_size(64)
        .history_size(0)
        .enable_safe_overflow(false)
        .max_publishers(1)
        .max_subscribers(1);
    let data_event = node.service_builder(&name("data-event")?).event();
    let ack_event = node.service_builder(&name("ack-event")?).event();
    Ok(if create {
        Services {
            data: data.create().map_err(err("create data service"))?,
            data_event: data_event.create().map_err(err("create event service"))?,
            ack: ack.create().map_err(err("create ack service"))?,
            ack_event: ack_event.create().map_err(err("create event service"))?,
        }
    } else {
        Services {
            data: data.open().map_err(err("open data service"))?,
            data_event: data_event.open().map_err(err("open event service"))?,
            ack: ack.open().map_err(err("open ack service"))?,
            ack_event: ack_event.open().map_err(err("open event service"))?,
        }
    })
}

/// Waits for a sample on `sub`: spins (poll) or waits on `listener` (block).
fn next_sample<P: std::fmt::Debug + ?Sized + IceoryxSend, T>(
    sub: &Subscriber<ipc::Service, P, ()>,
    listener: &Listener<ipc::Service>,
    blocking: bool,
    mut take: impl FnMut(&Subscriber<ipc::Service, P, ()>) -> io::Result<Option<T>>,
) -> io::Result<T> {
    let mut patience = Patience::default();
    loop {
        if let Some(v) = take(sub)? {
            return Ok(v);
        }
        let look = if blocking {
            listener.timed_wait(|_| {}, Duration::from_millis(200)).map_err(err("wait"))?;
            true
        } else {
            patience.spin()
        };
        if look {
            patience.check("iceoryx2")?;
        }
    }
}

/// The producing end: publisher of data, subscriber of acks.
#[derive(Debug)]
pub struct IoxProducer {
    publisher: Publisher<ipc::Service, [u8], ()>,
    notifier: Notifier<ipc::Service>,
    acks: Subscriber<ipc::Service, u64, ()>,
    ack_listener: Listener<ipc::Service>,
    payload: Vec<u8>,
    window: u64,
    blocking: bool,
    // Declared last: dropped after the ports.
    _services: ServicesHolder,
}

/// Keeps a run's services and node alive for as long as its ports.
struct ServicesHolder {
    _services: Services,
    _node: Node<ipc::Service>,
}

impl std::fmt::Debug for ServicesHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServicesHolder")
    }
}

impl IoxProducer {
    /// Creates the services and the producer's ports (before the peer is spawned).
    ///
    /// # Errors
    /// Any iceoryx2 failure.
    pub fn new(spec: &RunSpec) -> io::Result<Self> {
        let node = node()?;
        let s = services(&node, spec, true)?;
        let publisher = s
            .data
            .publisher_builder()
            .initial_max_slice_len(spec.size)
            .allocation_strategy(AllocationStrategy::Static)
            .max_loaned_samples(1)
            .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
            .create()
            .map_err(err("publisher"))?;
        let notifier = s.data_event.notifier_builder().create().map_err(err("notifier"))?;
        let acks = s.ack.subscriber_builder().buffer_size(64).create().map_err(err("subscriber"))?;
        let ack_listener = s.ack_event.listener_builder().create().map_err(err("listener"))?;
        Ok(Self {
            publisher,
            notifier,
            acks,
            ack_listener,
            payload: proto::pattern(spec.size),
            window: u64::from(proto::slots_for(spec.size)) - 1,
            blocking: spec.transport.blocking(),
            _services: ServicesHolder { _services: s, _node: node },
        })
    }
}

impl Producer for IoxProducer {
    fn send(&mut self, seq: u64, flags: u64) -> io::Result<()> {
        stamp(&mut self.payload, seq, flags);
        let sample = self.publisher.loan_slice_uninit(self.payload.len()).map_err(err("loan"))?;
        let sample = sample.write_from_slice(&self.payload);
        sample.send().map_err(err("send"))?;
        if self.blocking {
            self.notifier.notify().map_err(err("notify"))?;
        }
        Ok(())
    }

    fn recv_ack(&mut self) -> io::Result<u64> {
        next_sample(&self.acks, &self.ack_listener, self.blocking, |sub| {
            Ok(sub.receive().map_err(err("receive"))?.map(|s| *s.payload()))
        })
    }

    fn window(&self) -> Option<u64> {
        Some(self.window)
    }
}

/// The consuming end: subscriber of data (read in place and checksummed), publisher of acks.
#[derive(Debug)]
pub struct IoxConsumer {
    subscriber: Subscriber<ipc::Service, [u8], ()>,
    listener: Listener<ipc::Service>,
    acks: Publisher<ipc::Service, u64, ()>,
    ack_notifier: Notifier<ipc::Service>,
    blocking: bool,
    ack_every: u64,
    _services: ServicesHolder,
}

impl IoxConsumer {
    /// Opens the services the producer created and the consumer's ports.
    ///
    /// # Errors
    /// Any iceoryx2 failure.
    pub fn new(spec: &RunSpec) -> io::Result<Self> {
        let node = node()?;
        let s = services(&node, spec, false)?;
        let slots = proto::slots_for(spec.size);
        let subscriber =
            s.data.subscriber_builder().buffer_size(slots as usize).create().map_err(err("subscriber"))?;
        let listener = s.data_event.listener_builder().create().map_err(err("listener"))?;
        let acks = s
            .ack
            .publisher_builder()
            .max_loaned_samples(1)
            .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
            .create()
            .map_err(err("publisher"))?;
        let ack_notifier = s.ack_event.notifier_builder().create().map_err(err("notifier"))?;
        Ok(Self {
            subscriber,
            listener,
            acks,
            ack_notifier,
            blocking: spec.transport.blocking(),
            ack_every: (u64::from(slots) / 4).max(1),
            _services: ServicesHolder { _services: s, _node: node },
        })
    }
}

impl Consumer for IoxConsumer {
    fn recv(&mut self) -> io::Result<Received> {
        next_sample(&self.subscriber, &self.listener, self.blocking, |sub| {
            let Some(sample) = sub.receive().map_err(err("receive"))? else {
                return Ok(None);
            };
            let payload = sample.payload();
            std::hint::black_box(checksum(payload));
            let (seq, flags) = read_stamp(payload);
            Ok(Some(Received { seq, flags, len: payload.len(), lost: 0 }))
        })
    }

    fn send_ack(&mut self, value: u64) -> io::Result<()> {
        let sample = self.acks.loan_uninit().map_err(err("loan"))?;
        sample.write_payload(value).send().map_err(err("send"))?;
        if self.blocking {
            self.ack_notifier.notify().map_err(err("notify"))?;
        }
        Ok(())
    }

    fn ack_every(&self) -> Option<u64> {
        Some(self.ack_every)
    }
}
