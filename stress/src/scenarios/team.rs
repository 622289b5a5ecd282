//! A team of application threads that make a batch of calls at once: the client behind
//! [`Client::Threads`](super::Client::Threads).
//!
//! # Design note
//!
//! Each member is one long-lived thread that owns its [`Call`], built on that thread (so a
//! runtime call's worker in the child is made once, for that thread, and kept across rounds).
//! The benchmark thread talks to each member over two channels: it sends "make `k` calls",
//! the member makes them, timing each, and sends the latencies back. [`Team::run`] sends every
//! member its share first and only then collects, so the members' calls overlap; the samples of
//! all members are appended together, and the wall time the benchmark measures around
//! [`Team::run`] is the whole team's, so calls per second is the aggregate throughput.
//!
//! Every wait ends: a member waits for work on a channel the team closes on drop, and for its
//! calls, which the scenario's contract bounds; the benchmark waits for a member's answer on a
//! channel whose sender the member drops when it returns or panics.

use std::any::Any;
use std::io;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, unbounded};

use super::{Call, time_each};

/// What a member sends back: the latencies of its share of a batch, or why it failed.
type Answer = io::Result<Vec<Duration>>;

/// Application threads making calls at once.
///
/// Dropping it stops and joins every member, then drops what [`keeping`](Self::keeping) gave
/// it (typically the connection the members' calls use).
pub struct Team {
    members: Vec<Member>,
    /// Dropped after the members are joined.
    kept: Option<Box<dyn Any + Send>>,
}

/// One member thread and its two channels.
struct Member {
    /// `None` once the team is dropped: the member's loop ends.
    work: Option<Sender<usize>>,
    answers: Receiver<Answer>,
    thread: Option<JoinHandle<()>>,
}

impl Team {
    /// Starts `size` threads named `NAME-I`; thread `I` builds its call with `make(I)`.
    ///
    /// `make` runs on the member thread, so whatever it does there (a first call that makes the
    /// thread's worker in the child, say) is done once per thread and is not measured.
    ///
    /// # Errors
    ///
    /// The first error of spawning a thread or of `make`; the threads started are stopped and
    /// joined first.
    pub fn spawn<F>(name: &str, size: usize, make: F) -> io::Result<Team>
    where
        F: Fn(usize) -> io::Result<Call> + Send + Sync + 'static,
    {
        let make = Arc::new(make);
        let mut team = Team {
            members: Vec::with_capacity(size),
            kept: None,
        };
        for index in 0..size {
            let (work_tx, work_rx) = unbounded();
            let (answer_tx, answer_rx) = unbounded();
            let make = make.clone();
            // On error, `team` drops here: the members already started stop and are joined.
            let thread = thread::Builder::new()
                .name(format!("{name}-{index}"))
                .spawn(move || member(index, &*make, &work_rx, &answer_tx))?;
            team.members.push(Member {
                work: Some(work_tx),
                answers: answer_rx,
                thread: Some(thread),
            });
        }
        // Each member answers once when its call is built.
        for member in &team.members {
            member.answer()?;
        }
        Ok(team)
    }

    /// Keeps `owner` alive until every member has been joined.
    #[must_use]
    pub fn keeping(mut self, owner: impl Any + Send) -> Team {
        self.kept = Some(Box::new(owner));
        self
    }

    /// How many threads the team has.
    pub fn size(&self) -> usize {
        self.members.len()
    }

    /// Splits `n` calls between the members as evenly as possible, lets them make their shares
    /// at once, and appends every latency to `samples`.
    ///
    /// # Errors
    ///
    /// The first member's error (after every member has answered, so no call is left running).
    pub fn run(&mut self, n: usize, samples: &mut Vec<Duration>) -> io::Result<()> {
        let size = self.members.len();
        if size == 0 {
            return match n {
                0 => Ok(()),
                _ => Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a team without threads cannot make calls",
                )),
            };
        }
        let mut sent = Vec::with_capacity(size);
        for (index, member) in self.members.iter().enumerate() {
            let share = n * (index + 1) / size - n * index / size;
            let ok = member
                .work
                .as_ref()
                .is_some_and(|work| work.send(share).is_ok());
            sent.push(ok);
        }
        let mut first_error = None;
        for (member, sent) in self.members.iter().zip(sent) {
            let answer = if sent {
                member.answer()
            } else {
                Err(io::Error::other("a team thread has stopped"))
            };
            match answer {
                Ok(latencies) => samples.extend(latencies),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Member {
    /// Waits for the member's next answer.
    fn answer(&self) -> Answer {
        self.answers
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("a team thread panicked")))
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        // Stop every member before joining any, so they wind down together.
        for member in &mut self.members {
            member.work = None;
        }
        for member in &mut self.members {
            if let Some(thread) = member.thread.take() {
                let _ = thread.join();
            }
        }
        // `kept` drops after this body: after the joins.
    }
}

/// A member's life: build the call, answer, then make each share asked for until the team goes.
fn member(
    index: usize,
    make: &(dyn Fn(usize) -> io::Result<Call> + Send + Sync),
    work: &Receiver<usize>,
    answers: &Sender<Answer>,
) {
    let mut call = match make(index) {
        Ok(call) => call,
        Err(e) => {
            let _ = answers.send(Err(e));
            return;
        }
    };
    if answers.send(Ok(Vec::new())).is_err() {
        return;
    }
    for n in work {
        let mut latencies = Vec::with_capacity(n);
        let answer = time_each(&mut call, n, &mut latencies).map(|()| latencies);
        if answers.send(answer).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn shares_add_up_and_every_member_calls() {
        mp_testkit::watchdog::guard(
            "team::shares_add_up_and_every_member_calls",
            std::time::Duration::from_secs(60),
            || {
                let calls = Arc::new(AtomicUsize::new(0));
                let per_member: Arc<Vec<AtomicUsize>> =
                    Arc::new((0..3).map(|_| 0.into()).collect());
                let (calls2, per_member2) = (calls.clone(), per_member.clone());
                let mut team = Team::spawn("team-test", 3, move |index| {
                    let (calls, per_member) = (calls2.clone(), per_member2.clone());
                    Ok(Box::new(move || {
                        calls.fetch_add(1, Ordering::Relaxed);
                        per_member[index].fetch_add(1, Ordering::Relaxed);
                        Ok(())
                    }) as Call)
                })
                .expect("team");
                assert_eq!(team.size(), 3);
                let mut samples = Vec::new();
                team.run(10, &mut samples).expect("round");
                team.run(2, &mut samples)
                    .expect("round smaller than the team");
                assert_eq!(samples.len(), 12);
                assert_eq!(calls.load(Ordering::Relaxed), 12);
                let shares: Vec<usize> = per_member
                    .iter()
                    .map(|n| n.load(Ordering::Relaxed))
                    .collect();
                assert_eq!(shares.iter().sum::<usize>(), 12);
                assert!(shares.iter().all(|&n| (3..=5).contains(&n)), "{shares:?}");
            },
        );
    }

    #[test]
    fn a_failing_set_up_is_reported() {
        mp_testkit::watchdog::guard(
            "team::a_failing_set_up_is_reported",
            std::time::Duration::from_secs(60),
            || {
                let result = Team::spawn("team-test", 4, |index| {
                    if index == 2 {
                        Err(io::Error::other("no call for you"))
                    } else {
                        Ok(Box::new(|| Ok(())) as Call)
                    }
                });
                let e = result.err().expect("set-up fails");
                assert_eq!(e.to_string(), "no call for you");
            },
        );
    }

    #[test]
    fn a_failing_call_is_reported_after_every_member_answers() {
        mp_testkit::watchdog::guard(
            "team::a_failing_call_is_reported_after_every_member_answers",
            std::time::Duration::from_secs(60),
            || {
                let mut team = Team::spawn("team-test", 2, |index| {
                    Ok(Box::new(move || {
                        if index == 0 {
                            Err(io::Error::other("call failed"))
                        } else {
                            Ok(())
                        }
                    }) as Call)
                })
                .expect("team");
                let e = team.run(4, &mut Vec::new()).expect_err("member 0 fails");
                assert_eq!(e.to_string(), "call failed");
                // The team is still usable, and drops cleanly.
                assert!(team.run(0, &mut Vec::new()).is_ok());
            },
        );
    }

    #[test]
    fn kept_values_drop_after_the_members() {
        mp_testkit::watchdog::guard(
            "team::kept_values_drop_after_the_members",
            std::time::Duration::from_secs(60),
            || {
                struct Flag(Arc<AtomicUsize>);
                impl Drop for Flag {
                    fn drop(&mut self) {
                        self.0.store(1, Ordering::SeqCst);
                    }
                }
                let kept = Arc::new(AtomicUsize::new(0));
                let seen_by_members = Arc::new(AtomicUsize::new(0));
                let (k, s) = (kept.clone(), seen_by_members.clone());
                let team = Team::spawn("team-test", 2, move |_| {
                    let (k, s) = (k.clone(), s.clone());
                    // Runs when the member drops its call, on its way out.
                    let guard = Guard(Box::new(move || {
                        s.fetch_add(k.load(Ordering::SeqCst), Ordering::SeqCst);
                    }));
                    Ok(Box::new(move || {
                        let _ = &guard;
                        Ok(())
                    }) as Call)
                })
                .expect("team")
                .keeping(Flag(kept.clone()));
                drop(team);
                assert_eq!(kept.load(Ordering::SeqCst), 1);
                assert_eq!(
                    seen_by_members.load(Ordering::SeqCst),
                    0,
                    "members saw the kept value dropped"
                );

                struct Guard(Box<dyn Fn() + Send>);
                impl Drop for Guard {
                    fn drop(&mut self) {
                        (self.0)();
                    }
                }
            },
        );
    }
}
