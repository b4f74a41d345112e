#pragma once
// A recorded sequence of one backend's ops (a CUDA graph), replayed with the same pointers
// and launch geometry: whatever varies between replays must live in device memory the
// recorded ops read (Backend::capture_graph).
namespace anvil {

class DeviceGraph {
 public:
  virtual ~DeviceGraph() = default;
  // Queues the recorded work on the backend's stream again.
  virtual void replay() = 0;
};

}  // namespace anvil
