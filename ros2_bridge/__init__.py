"""ROS 2 without rclpy: a routing node on Cyclone DDS (`python -m ros2_bridge.node`) and the
decision log and evaluation traces as a ROS 2 MCAP bag (`python -m ros2_bridge.bag`).
docs/clients/ros2.md says what each does and what was and was not checked against ROS 2."""
