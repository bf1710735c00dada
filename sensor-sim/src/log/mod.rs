//! Recorded logs: KITTI folders and ROS 2 MCAP bags.
