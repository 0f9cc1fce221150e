//! rejectwatch: an eBPF observer that turns an API's reject pile into
//! intelligence. Sources produce [`record::Record`]s, the pure core
//! ([`join`]) turns them into [`exchange::Exchange`]s, sinks consume them.

pub mod exchange;
pub mod http;
pub mod join;
pub mod observe;
pub mod record;
