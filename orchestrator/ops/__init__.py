"""Operations: what an operator does to a running ksaga (the logic behind ``ksaga`` commands)."""
