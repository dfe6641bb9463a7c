// SessionTimer: the per-session timers (heartbeat, CONNECT and token deadlines) without an
// Asio timer and a heap-allocated wait each. Every SessionTimer of an io_context sits, while
// armed, in one binary heap by expiry (SessionTimers, an io_context service), and one
// steady_timer waits for the earliest. A handler is stored inside the timer.
// Loop thread only: the io_context must be run by one thread.
//
// The API is the subset of boost::asio::steady_timer that sessions use, with one difference:
// cancel(), or arming the timer again, drops a waiting handler without calling it (Asio
// calls it with operation_aborted; every session handler returns on an error anyway).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

namespace walcast {

class SessionTimers;

class SessionTimer {
public:
    using clock_type = std::chrono::steady_clock;
    using time_point = clock_type::time_point;
    using duration = clock_type::duration;

    explicit SessionTimer(boost::asio::io_context& io);
    ~SessionTimer() { cancel(); }
    SessionTimer(const SessionTimer&) = delete;
    SessionTimer& operator=(const SessionTimer&) = delete;

    // Sets the expiry; a waiting handler is dropped.
    void expires_after(duration d) {
        cancel();
        expiry_ = clock_type::now() + d;
    }
    void expires_at(time_point t) {
        cancel();
        expiry_ = t;
    }
    time_point expiry() const { return expiry_; }

    // `handler(const boost::system::error_code&)` runs on the loop at the expiry, with no
    // error. One wait at a time: a second async_wait replaces the first.
    template <class Handler>
    void async_wait(Handler&& handler);

    // Drops the waiting handler, if any, without calling it.
    void cancel();

private:
    friend class SessionTimers;
    static constexpr std::size_t kNotArmed = static_cast<std::size_t>(-1);
    static constexpr std::size_t kInline = 40;  // a session handler: this, a weak_ptr, two ids

    // What can be done with the stored handler's type.
    struct Ops {
        void (*call)(void* storage);     // moves it out, destroys the stored one, calls it
        void (*destroy)(void* storage);  // destroys it uncalled
    };
    template <class H>
    static constexpr Ops kOps{
        [](void* p) {
            H h(std::move(*static_cast<H*>(p)));
            static_cast<H*>(p)->~H();
            h(boost::system::error_code());
        },
        [](void* p) { static_cast<H*>(p)->~H(); },
    };

    SessionTimers& timers_;
    time_point expiry_{};
    std::size_t heap_index_ = kNotArmed;
    const Ops* ops_ = nullptr;  // set while a handler is stored
    alignas(void*) unsigned char storage_[kInline];

    void fire();
};

// The heap of armed SessionTimers of one io_context and the one Asio timer behind them.
class SessionTimers : public boost::asio::io_context::service {
public:
    static inline boost::asio::io_context::id id;

    explicit SessionTimers(boost::asio::io_context& io) : boost::asio::io_context::service(io), timer_(io) {}

    std::size_t armed() const { return heap_.size(); }

private:
    friend class SessionTimer;

    std::vector<SessionTimer*> heap_;  // a min-heap by expiry; each knows its index
    boost::asio::steady_timer timer_;
    bool waiting_ = false;
    SessionTimer::time_point waiting_for_{};

    void shutdown() override {
        // The io_context is going away: nothing fires any more.
        for (SessionTimer* t : heap_) t->heap_index_ = SessionTimer::kNotArmed;
        heap_.clear();
        boost::system::error_code ignored;
        timer_.cancel(ignored);
    }

    static bool earlier(const SessionTimer* a, const SessionTimer* b) { return a->expiry_ < b->expiry_; }

    void place(std::size_t i) {
        heap_[i]->heap_index_ = i;
    }

    void sift_up(std::size_t i) {
        while (i > 0) {
            const std::size_t parent = (i - 1) / 2;
            if (!earlier(heap_[i], heap_[parent])) break;
            std::swap(heap_[i], heap_[parent]);
            place(i);
            i = parent;
        }
        place(i);
    }

    void sift_down(std::size_t i) {
        for (;;) {
            const std::size_t l = 2 * i + 1, r = l + 1;
            std::size_t least = i;
            if (l < heap_.size() && earlier(heap_[l], heap_[least])) least = l;
            if (r < heap_.size() && earlier(heap_[r], heap_[least])) least = r;
            if (least == i) break;
            std::swap(heap_[i], heap_[least]);
            place(i);
            i = least;
        }
        place(i);
    }

    void add(SessionTimer* t) {
        heap_.push_back(t);
        sift_up(heap_.size() - 1);
        rearm();
    }

    void remove(SessionTimer* t) {
        const std::size_t i = t->heap_index_;
        t->heap_index_ = SessionTimer::kNotArmed;
        SessionTimer* last = heap_.back();
        heap_.pop_back();
        if (last == t) return;
        heap_[i] = last;
        sift_up(i);
        sift_down(last->heap_index_);
        // The Asio timer may now wait for an expiry nobody has: it finds nothing due and
        // waits again for the earliest.
    }

    // Makes the Asio timer wait for the earliest expiry, unless it already waits for it or
    // an earlier one.
    void rearm() {
        if (heap_.empty()) return;
        const SessionTimer::time_point first = heap_.front()->expiry_;
        if (waiting_ && waiting_for_ <= first) return;
        waiting_ = true;
        waiting_for_ = first;
        timer_.expires_at(first);  // a wait already pending completes with operation_aborted
        timer_.async_wait([this, first](const boost::system::error_code& ec) {
            if (ec) return;  // replaced by an earlier wait, or shut down
            if (waiting_for_ == first) waiting_ = false;
            run_due();
        });
    }

    void run_due() {
        // Re-arms for the timers left even if a handler throws (it unwinds io_context::run,
        // as a throwing Asio handler would).
        struct Rearm {
            SessionTimers& timers;
            ~Rearm() { timers.rearm(); }
        } rearm_after{*this};
        const SessionTimer::time_point now = SessionTimer::clock_type::now();
        while (!heap_.empty() && heap_.front()->expiry_ <= now) {
            SessionTimer* t = heap_.front();
            remove(t);
            t->fire();  // may arm t or any other timer again
        }
    }
};

inline SessionTimer::SessionTimer(boost::asio::io_context& io)
    : timers_(boost::asio::use_service<SessionTimers>(io)) {}

template <class Handler>
void SessionTimer::async_wait(Handler&& handler) {
    using H = std::decay_t<Handler>;
    static_assert(sizeof(H) <= kInline && alignof(H) <= alignof(void*),
                  "a SessionTimer handler is stored inside the timer: capture little");
    static_assert(std::is_nothrow_move_constructible_v<H>);
    cancel();
    new (storage_) H(std::forward<Handler>(handler));
    ops_ = &kOps<H>;
    timers_.add(this);
}

inline void SessionTimer::cancel() {
    if (heap_index_ != kNotArmed) timers_.remove(this);
    if (const Ops* ops = ops_) {
        ops_ = nullptr;
        ops->destroy(storage_);
    }
}

// The handler is moved out before it is called, so it may arm this timer again.
inline void SessionTimer::fire() {
    if (const Ops* ops = ops_) {
        ops_ = nullptr;
        ops->call(storage_);
    }
}

}  // namespace walcast
