// A TCP proxy that makes a loopback connection behave like a long-distance
// one, for the WAN case of benchmarks/copy_bench.sh on kernels without the
// netem qdisc.
//
//   latency_proxy LISTEN_PORT UPSTREAM_HOST:PORT [--delay-ms 20] [--window 4M]
//
// Every byte is held for --delay-ms in each direction (so a request/response
// round trip costs 2×delay, as with netem on both ends of a veth pair), and a
// connection may have at most window/2 bytes held per direction: like a TCP
// stream whose receive window is --window, one connection moves at most
// window / (2×delay) bytes per second however fast both ends are. Several
// connections each get their own window — which is what lets parallel ranged
// reads beat a single stream over a real WAN link.
//
// Prints "ready PORT" once listening; runs until killed.
#include <utility>  // before Asio: boost 1.74's awaitable.hpp needs std::exchange

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::chrono::milliseconds delay{20};
  size_t window = 4 << 20;
};

// One direction: a reader fills a queue of time-stamped chunks, a writer
// delivers each when it is due.
class Pipe {
 public:
  Pipe(tcp::socket& from, tcp::socket& to, const Options& o) : from_(from), to_(to), o_(o) {}

  void Run() {
    std::thread writer([this] { Write(); });
    Read();
    writer.join();
  }

 private:
  struct Chunk {
    Clock::time_point due;
    std::vector<char> data;
  };

  void Read() {
    const size_t cap = o_.window / 2;
    for (;;) {
      std::vector<char> buf(256 << 10);
      boost::system::error_code ec;
      size_t n = from_.read_some(asio::buffer(buf), ec);
      std::unique_lock lock(mu_);
      if (ec || n == 0) {
        eof_ = true;
        cv_.notify_all();
        return;
      }
      buf.resize(n);
      held_ += n;
      queue_.push_back({Clock::now() + o_.delay, std::move(buf)});
      cv_.notify_all();
      cv_.wait(lock, [&] { return held_ < cap || broken_; });
      if (broken_) return;
    }
  }

  void Write() {
    for (;;) {
      Chunk c;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return !queue_.empty() || eof_; });
        if (queue_.empty()) break;
        c = std::move(queue_.front());
        queue_.pop_front();
      }
      std::this_thread::sleep_until(c.due);
      boost::system::error_code ec;
      asio::write(to_, asio::buffer(c.data), ec);
      std::lock_guard lock(mu_);
      held_ -= c.data.size();
      cv_.notify_all();
      if (ec) {
        broken_ = true;
        break;
      }
    }
    boost::system::error_code ignored;
    to_.shutdown(tcp::socket::shutdown_send, ignored);
    // Unblock the reader if the other side is gone.
    if (broken_) from_.shutdown(tcp::socket::shutdown_receive, ignored);
  }

  tcp::socket& from_;
  tcp::socket& to_;
  const Options& o_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Chunk> queue_;
  size_t held_ = 0;
  bool eof_ = false;
  bool broken_ = false;
};

void Serve(tcp::socket client, tcp::endpoint upstream, Options o) {
  asio::io_context io;
  tcp::socket server(io);
  boost::system::error_code ec;
  server.connect(upstream, ec);
  if (ec) return;
  server.set_option(tcp::no_delay(true));
  client.set_option(tcp::no_delay(true));
  Pipe up(client, server, o), down(server, client, o);
  std::thread t([&] { up.Run(); });
  down.Run();
  t.join();
}

size_t ParseSize(const std::string& s) {
  size_t mult = 1;
  std::string num = s;
  if (!s.empty() && (s.back() == 'M' || s.back() == 'K')) {
    mult = s.back() == 'M' ? (1 << 20) : (1 << 10);
    num.pop_back();
  }
  return static_cast<size_t>(std::stoull(num)) * mult;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: latency_proxy LISTEN_PORT UPSTREAM_HOST:PORT [--delay-ms N] "
                 "[--window SIZE]\n");
    return 2;
  }
  Options o;
  for (int i = 3; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--delay-ms") {
      o.delay = std::chrono::milliseconds(std::atoi(argv[i + 1]));
    } else if (k == "--window") {
      o.window = ParseSize(argv[i + 1]);
    } else {
      std::fprintf(stderr, "latency_proxy: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  std::string up = argv[2];
  size_t colon = up.rfind(':');
  if (colon == std::string::npos) {
    std::fprintf(stderr, "latency_proxy: upstream must be HOST:PORT\n");
    return 2;
  }
  asio::io_context io;
  tcp::endpoint upstream(asio::ip::make_address(up.substr(0, colon)),
                         static_cast<unsigned short>(std::stoi(up.substr(colon + 1))));
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"),
                                           static_cast<unsigned short>(std::atoi(argv[1]))));
  std::printf("ready %u\n", acceptor.local_endpoint().port());
  std::fflush(stdout);
  for (;;) {
    tcp::socket client(io);
    acceptor.accept(client);
    std::thread(Serve, std::move(client), upstream, o).detach();
  }
}
